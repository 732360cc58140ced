/* SPDX-License-Identifier: MIT */
/*
 * exitcodes.h: the one exit-status table of every command and man page.
 * 0-5 are spoolmq's own; the rest are sysexits(3) so that callers such as
 * cron, MTAs and systemd already know what they mean.
 */
#ifndef SPOOL_EXITCODES_H
#define SPOOL_EXITCODES_H

#include <sysexits.h>

#define EX_DONE 0      /* done */
#define EX_NOTHING 1   /* nothing to do: empty queue, wait timed out, nothing matched */
#define EX_NOTFOUND 2  /* unknown id, or the lease was already lost */
#define EX_DUPLICATE 3 /* mq-send --strict: the key was seen within the dedup window */
#define EX_PAUSED 4    /* mq-recv: the queue is paused (mq-pause) */
#define EX_PARTIAL 5   /* mq-send --topic: some subscribers did not get it (each named on stderr) */
/* EX_USAGE 64, EX_DATAERR 65 (also a file in a spool that is not a regular
 * file), EX_NOINPUT 66, EX_NOUSER 67 (a topic without subscribers),
 * EX_OSERR 71 (out of memory), EX_CANTCREAT 73,
 * EX_IOERR 74, EX_TEMPFAIL 75 (queue full, disk under its reserve or full),
 * EX_NOPERM 77, EX_CONFIG 78: from <sysexits.h>. */

#endif
