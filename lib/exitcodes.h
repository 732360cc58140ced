/* SPDX-License-Identifier: MIT */
/*
 * exitcodes.h: the one exit-status table of every command and man page.
 * 0-5 are spoolmq's own; the rest are sysexits(3) so that callers such as
 * cron, MTAs and systemd already know what they mean.
 *
 * This file is the source: the shared tables of README, mq(7) and
 * mq-spool(5) list exactly the codes below, and every command's EXIT STATUS
 * only codes of it (t/0031-exit-codes.bats parses them all and compares).
 * A code added here goes into those three tables in the same commit.
 *
 * Out of memory is EX_OSERR (71) wherever it is noticed, in a command or in
 * lib/ (spool_errno_code maps ENOMEM): sysexits gives 71 to "an operating
 * system error ... such as cannot fork", which running out of memory is;
 * 74 is left to errors of the file system and of the standard streams.
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

/*
 * From <sysexits.h>, the ones spoolmq exits with:
 *
 *   64 EX_USAGE      usage error: bad option, bad queue name, bad header
 *   65 EX_DATAERR    bad data: a message over max-size, a file in a spool
 *                    that is not a regular file
 *   66 EX_NOINPUT    no input: a file or the spool cannot be read
 *   67 EX_NOUSER     a topic without subscribers (mq-send --topic)
 *   70 EX_SOFTWARE   internal error: a bug, to be reported
 *   71 EX_OSERR      out of memory, no process to be had, poll/epoll failed
 *   73 EX_CANTCREAT  a file or directory cannot be created
 *   74 EX_IOERR      I/O error
 *   75 EX_TEMPFAIL   try again later: queue full, disk under its reserve or full
 *   77 EX_NOPERM     permission denied
 *   78 EX_CONFIG     bad configuration
 *
 * EX_PROTOCOL (76) is no exit status: lib/import.c returns it for a relay
 * loop, which mq-relayd answers with an HTTP status.
 */

#endif
