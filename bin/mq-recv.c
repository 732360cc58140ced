/* SPDX-License-Identifier: MIT */
/*
 * mq-recv: claim the oldest due messages of a queue and deliver them: to
 * stdout (then ack), as paths (-c, claim only), or to a command (-x).
 * Waiting (-w, -f) sleeps on inotify and on a timer for the next delayed
 * message or expiring lease, never by polling.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-recv [-cf] [-d dir] [-n count] [-w sec] [-x cmd] queue\n"
	"\n"
	"  -c        claim only: print the cur/ path, for mq-ack or mq-nack\n"
	"  -d dir    the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -f        follow: wait for more, for ever (until SIGTERM)\n"
	"  -n count  handle up to count messages (default 1; 0: every one due)\n"
	"  -w sec    wait up to sec for a first message (one word: 30, 30s, 5m)\n"
	"  -x cmd    run cmd per message, body on stdin: 0 acks, 65/100 bury, else retry\n"
	"  (no -c, -x: the bodies are written to stdout, then acked)\n";

#define OUT_BATCH 64 /* messages written to stdout before their acks */
#define REPAIR_EVERY (60 * 1000) /* ms between repairs while waiting */
#define PAUSE_LOOK 100 /* ms: how stale a drain's view of mq-pause may be */
#define REST_FIRST 1000          /* ms: -f after a full disk refused a change, */
#define REST_MAX (30 * 1000)     /* doubling up to this */

static struct {
	int claim_only;
	const char *cmd;
	int failed;       /* a handler failed, or a lease was lost */
	int follow;       /* -f */
} opt;

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/*
 * -f runs until a signal, and a full disk (ENOSPC, EDQUOT: EX_TEMPFAIL) is
 * not one: a burial or retry it refused is logged, left as it is (the
 * message stays in cur/, under its lease), and tried again after a rest of
 * 1 s doubling to 30 s, until space returns.  1: rested, try again; 0: give
 * up (not -f, another error, or a signal came).
 */
static int
ride_out(const struct spool_err *e, const char *what)
{
	static int64_t rest;
	if (!e) {
		rest = 0; /* it worked */
		return 0;
	}
	if (!opt.follow || e->code != EX_TEMPFAIL || stop)
		return 0;
	rest = rest ? (rest * 2 > REST_MAX ? REST_MAX : rest * 2) : REST_FIRST;
	cli_warn("%s%s; trying again in %llds", e->msg, what, (long long)rest / 1000);
	poll(NULL, 0, (int)rest); /* a signal ends it early, and sets stop */
	return !stop;
}

/* Bodies of held[] are in out; write them, then ack (never before). */
static spool_queue *queue; /* the one queue received from */
static spool_msg *held[OUT_BATCH];
static size_t nheld;
static char *out;
static size_t outlen, outcap;

static void
give_back_held(const char *why)
{
	struct spool_err e = {0};
	for (size_t i = 0; i < nheld; i++) {
		if (spool_nack(held[i], 0, why, &e) < 0)
			cli_error(&e);
		spool_msg_free(held[i]);
	}
	nheld = 0;
}

static void
flush_out(void)
{
	struct spool_err e = {0};
	size_t off = 0;
	spool_queue_hold_flush(queue); /* before what we claimed leaves the process */
	while (off < outlen) {
		ssize_t w = write(1, out + off, outlen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int err = errno;
			give_back_held("output failed");
			cli_die(EX_IOERR, "write to stdout: %s", strerror(err));
		}
		off += (size_t)w;
	}
	outlen = 0;
	for (size_t i = 0; i < nheld; i++) {
		if (spool_ack(held[i], &e) != 0) {
			cli_error(&e);
			opt.failed = 1;
		}
	}
	spool_msg_free_v(held, nheld);
	nheld = 0;
}

static void
to_stdout(spool_msg *m)
{
	struct spool_err e = {0};
	for (;;) {
		if (outcap - outlen < 65536) {
			if (outlen >= 1 << 20 && nheld == 0) {
				flush_out(); /* a big body: stream it; the ack still waits */
				continue;
			}
			outcap = outcap ? outcap * 2 : 1 << 17;
			/* cppcheck-suppress memleakOnRealloc ; cli_die exits */
			if (!(out = realloc(out, outcap)))
				cli_die(EX_OSERR, "out of memory");
		}
		ssize_t r = spool_msg_read(m, out + outlen, outcap - outlen, &e);
		if (r < 0) {
			give_back_held("read failed");
			cli_fail(&e);
		}
		if (r == 0)
			break;
		outlen += (size_t)r;
	}
	held[nheld++] = m;
	if (nheld == OUT_BATCH || outlen >= 1 << 20)
		flush_out();
}

static void
run(spool_msg *m)
{
	struct spool_err e = {0};
	enum spool_outcome oc;
	char desc[64];
	const char *id = spool_msg_id(m);
	char idbuf[32];
	snprintf(idbuf, sizeof idbuf, "%s", id);

	spool_job *j = spool_job_start(m, opt.cmd, 0, &e);
	if (!j && e.code == EX_NOTFOUND) { /* gone before its handler started */
		cli_error(&e);
		opt.failed = 1;
		return;
	}
	if (!j)
		cli_fail(&e);
	for (;;) {
		/* its exit, and its stderr: drained as it comes (kept for the reason) */
		struct pollfd pfd[2] = {{spool_job_pidfd(j), POLLIN, 0}, {spool_job_errfd(j), POLLIN, 0}};
		int64_t tick = spool_msg_next_tick(spool_job_msg(j)), wait = -1;
		if (tick) {
			wait = tick - spool_now();
			if (wait < 0)
				wait = 0;
			if (wait > INT_MAX)
				wait = INT_MAX;
		}
		int r = poll(pfd, 2, (int)wait);
		if (r > 0 && pfd[1].revents)
			spool_job_drain(j);
		if (r > 0 && pfd[0].revents)
			break;
		if (r < 0 && errno != EINTR)
			cli_die(EX_OSERR, "poll: %s", strerror(errno));
		if (spool_msg_tick(spool_job_msg(j), &e) != 0) /* a no-op until it is time */
			cli_error(&e); /* lost: let it finish, the outcome says so */
	}
	while (spool_job_finish(j, 0, &oc, desc, sizeof desc, &e) != 0)
		if (!ride_out(&e, ": the message stays in cur/"))
			cli_fail(&e);
	ride_out(NULL, NULL);
	if (spool_job_cannot_run(j) && oc == SPOOL_RETRY) /* given back uncounted */
		cli_die(EX_CONFIG, "handler '%s' cannot run (%s): messages left in the queue",
		        spool_printable(opt.cmd), desc);
	switch (oc) {
	case SPOOL_ACKED:
		break;
	case SPOOL_RETRY:
		cli_warn("%s: handler failed (%s): given back for a retry", idbuf, desc);
		opt.failed = 1;
		break;
	case SPOOL_BURIED:
		cli_warn("%s: handler failed (%s): moved to dead/", idbuf, desc);
		opt.failed = 1;
		break;
	case SPOOL_LOST:
		cli_warn("%s: lease lost while the handler ran (%s): it may run again", idbuf, desc);
		opt.failed = 1;
		break;
	}
	spool_job_free(j);
}

static void
deliver(spool_msg *m)
{
	if (opt.cmd) {
		run(m);
	} else if (opt.claim_only) {
		if (printf("%s\n", spool_msg_path(m)) < 0 || fflush(stdout) != 0) {
			struct spool_err e = {0};
			spool_nack(m, 0, "output failed", &e);
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
		}
		spool_msg_free(m);
	} else {
		to_stdout(m);
	}
}

static int
ms_until(int64_t t)
{
	int64_t d = t - spool_now();
	return d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
}

/*
 * A paused queue (mq-pause) gives nothing: mq-recv exits EX_PAUSED, or stops
 * after what it got; -f waits for the marker to go (an inotify event on the
 * queue directory) and then goes on.  1: resumed, look again; 0: stop.
 */
static int
paused(spool_queue *q, spool_watch *w, long got)
{
	static int said;
	struct spool_err e = {0};
	if (nheld)
		flush_out();
	if (!opt.follow) {
		if (got)
			return 0;
		cli_warn("queue %s is paused (mq-pause -u %s resumes it)", spool_queue_name(q),
		         spool_queue_name(q));
		cli_exit(EX_PAUSED);
	}
	if (!said++)
		cli_warn("queue %s is paused: waiting for mq-pause -u %s", spool_queue_name(q),
		         spool_queue_name(q));
	while (!stop && spool_queue_paused(q)) {
		struct pollfd pfd = {spool_watch_fd(w), POLLIN, 0};
		if (poll(&pfd, 1, REPAIR_EVERY) > 0 && spool_watch_read(w, NULL, NULL, &e) < 0)
			cli_fail(&e);
	}
	said = 0;
	return !stop;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	struct spool_err e = {0};
	const char *dir = NULL;
	long want = 1;
	int follow = 0, c;
	int64_t wait = -1;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "cd:fhn:w:x:", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': opt.claim_only = 1; break;
		case 'd': dir = optarg; break;
		case 'f': follow = 1; break;
		case 'h': cli_usage(1);
		case 'n': want = cli_count("-n", optarg); break;
		case 'w': wait = cli_duration("-w", optarg); break;
		case 'x': opt.cmd = optarg; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc != 1)
		cli_usage(0);
	if (opt.cmd && opt.claim_only)
		cli_die(EX_USAGE, "-c and -x: give one");
	if (follow)
		want = 0;
	opt.follow = follow;
	int waiting = follow || wait >= 0;

	/* A spool or queue that is in the way (a file) is no input (66), even
	 * when waiting would have created a missing one: only then create. */
	spool *sp;
	spool_queue *q = cli_queue(&sp, dir, argv[0], waiting ? CLI_OR_CREATE : 0);
	if (!q) {
		spool_close(sp);
		return EX_NOTHING; /* no such queue: nothing to receive */
	}
	if (!opt.claim_only) /* ours while we live; -c leaves them to their leases */
		spool_queue_hold(q);
	if (!opt.claim_only && !opt.cmd) /* to stdout: one record a batch (flush_out) */
		spool_queue_hold_defer(q);
	if (!opt.claim_only && want != 1) /* a key's next message is our next claim */
		spool_queue_runs(q, 1);
	/* Many to stdout: the close after each ack, which on a file system
	 * with online discard waits for the disk (closer.c), is taken off
	 * this thread.  Not with -x: it forks a handler for each message. */
	if (!opt.claim_only && !opt.cmd && want != 1)
		spool_closer_start();
	queue = q;
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	/* watch before the first look, so nothing can arrive unseen in between */
	spool_watch *w = NULL;
	if (waiting && !(w = spool_watch_new(&e)))
		cli_fail(&e);
	if (w && spool_watch_add(w, q, &e) < 0)
		cli_fail(&e);

	int64_t deadline = wait >= 0 ? spool_now() + wait : 0;
	int64_t next_repair = spool_now() + REPAIR_EVERY; /* spool_claim repaired first */
	long got = 0;
	struct cli_progress progress = {0};
	if (want == 0 && !follow) /* a drain: on a terminal, say how it goes */
		cli_progress_start(&progress, "messages", cli_progress_total(q, 1u << SPOOL_READY));
	int64_t pause_seen = 0; /* when QUEUE/paused was last looked for */
	while (!stop && (want == 0 || got < want)) {
		spool_msg *m;
		int64_t next_due;
		/* at the start, after each wait, and every PAUSE_LOOK in a drain:
		 * a stat a claim would cost a drain a tenth of its speed */
		if (spool_now() - pause_seen >= PAUSE_LOOK) {
			if (spool_queue_paused(q) && !paused(q, w, got))
				break;
			pause_seen = spool_now();
		}
		int r = spool_claim(q, &m, &next_due, &e);
		if (r < 0) {
			give_back_held("claim failed");
			if (ride_out(&e, ""))
				continue;
			cli_fail(&e);
		}
		if (r > 0) {
			deliver(m);
			got++;
			cli_progress_tick(&progress, 1);
			continue;
		}
		if (nheld) { /* before sleeping, and before giving up */
			flush_out();
			continue; /* its acks may have handed keys on (runs, promotes) */
		}
		/* nothing due: wait only when asked to, and (without -f) only for the first */
		if (stop || !waiting || (!follow && got > 0) || (deadline && spool_now() >= deadline))
			break;
		/* leases of others end by time alone: take them back when the
		 * earliest one is due, and look for new ones every REPAIR_EVERY */
		long back = spool_queue_tend(q, spool_now(), &next_repair, REPAIR_EVERY, &e);
		if (back < 0)
			cli_fail(&e);
		if (back > 0)
			continue;
		int64_t until = next_repair;
		if (deadline && deadline < until)
			until = deadline;
		if (next_due && next_due < until)
			until = next_due;
		until = spool_queue_wake_at(q, until);
		struct pollfd pfd = {spool_watch_fd(w), POLLIN, 0};
		int pr = poll(&pfd, 1, ms_until(until));
		if (pr < 0 && errno != EINTR)
			cli_die(EX_OSERR, "poll: %s", strerror(errno));
		if (pr > 0 && spool_watch_read(w, NULL, NULL, &e) < 0)
			cli_fail(&e);
		pause_seen = 0;
	}
	if (nheld)
		flush_out();
	cli_progress_end(&progress);
	spool_watch_free(w);
	spool_queue_close(q);
	spool_close(sp);
	free(out);
	if (got == 0)
		return EX_NOTHING;
	return opt.failed ? EX_TEMPFAIL : 0;
}
