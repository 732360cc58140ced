/* SPDX-License-Identifier: MIT */
/*
 * fuzz.h: what the harnesses that need a spool share: one throwaway spool
 * made at start-up under $TMPDIR and reused by every input (making a spool
 * per input would measure mkdir, not the parser).  fuzz/run points TMPDIR at
 * a tmpfs where it can, so the syncs cost nothing, and removes it afterwards.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_priv.h"

/* Die loudly: a harness whose set-up fails must not report "no crashes". */
static inline void
fuzz_die(const char *what, const struct spool_err *e)
{
	fprintf(stderr, "fuzz: %s: %s\n", what, e ? e->msg : "failed");
	abort();
}

/* A new spool with queue qname in it, created. */
static inline spool_queue *
fuzz_queue(const char *qname)
{
	static char dir[4096];
	const char *tmp = getenv("TMPDIR");
	struct spool_err e = {0};

	snprintf(dir, sizeof dir, "%s/spoolfuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		fuzz_die("mkdtemp", NULL);
	spool *sp = spool_open(dir, SPOOL_CREATE, &e);
	spool_queue *q = sp ? spool_queue_open(sp, qname, SPOOL_CREATE, &e) : NULL;
	if (!q)
		fuzz_die(dir, &e);
	return q; /* sp and q live as long as the process */
}

/*
 * libFuzzer's SIGALRM (its -timeout watchdog) is installed without
 * SA_RESTART, so it interrupts the library's system calls every second;
 * the harness would test the watchdog rather than the parser.  Called from
 * the first input, once libFuzzer has installed its handler.
 */
static inline void
fuzz_restart_alarm(void)
{
	static int done;
	struct sigaction sa;
	if (done++ || sigaction(SIGALRM, NULL, &sa) != 0)
		return;
	sa.sa_flags |= SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
}

#endif
