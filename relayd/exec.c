/* SPDX-License-Identifier: MIT */
/*
 * exec.c: consumers that run a command per message, exactly as `mq-recv -x
 * CMD` does (lib/job.c).  Each handler is watched through its pidfd; one
 * timer per handler covers its lease heartbeat, its timeout and the TERM
 * then KILL escalation, at timeout or at shutdown.  Its stderr is a second io
 * source, drained as it comes (passed on to ours, its tail kept for the
 * reason of a failure).  A command that cannot run (exit 126, 127) pauses
 * its consumer: the message goes back uncounted, and the command is tried
 * again after CMD_PAUSE or at SIGHUP.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "relayd.h"

#define CMD_PAUSE (60 * 1000) /* a command that cannot run: try it again after this */

struct job {
	struct work w;         /* first: the daemon's list of deliveries */
	struct relayd *r;
	spool_job *j;
	struct loop_io *io;    /* the pidfd */
	struct loop_io *errio; /* its stderr, NULL once at its end */
	struct loop_timer timer;
	int64_t started, kill_at;
	int signals;           /* 0 running, 1 sent TERM, 2 sent KILL */
	bool timed_out;
};

static void tend(void *arg);

static void
arm(struct job *j)
{
	struct relayd *r = j->r;
	struct consumer *c = j->w.c;
	int64_t t = spool_msg_next_tick(spool_job_msg(j->j));
	if (j->signals == 0 && c->timeout)
		earlier(&t, j->started + c->timeout);
	if (j->signals == 1)
		earlier(&t, j->kill_at);
	if (r->stopping && j->signals == 0)
		earlier(&t, r->stop_deadline);
	loop_timer_set(r->loop, &j->timer, t);
}

static void
finish(struct job *j)
{
	struct relayd *r = j->r;
	struct spool_err e = {0};
	enum spool_outcome oc;
	char desc[64], id[32];
	struct consumer *c = j->w.c;
	snprintf(id, sizeof id, "%s", spool_msg_id(spool_job_msg(j->j)));
	unsigned attempt = spool_msg_attempt(spool_job_msg(j->j));
	int how = j->timed_out ? 1 : (j->signals && r->stopping) ? -1 : 0;

	loop_io_del(r->loop, j->io);
	loop_io_del(r->loop, j->errio);
	loop_timer_set(r->loop, &j->timer, 0);
	if (spool_job_finish(j->j, how, &oc, desc, sizeof desc, &e) != 0) {
		logmsg(LOG_ERR, "%s: %s: %s", c->queue, id, e.msg);
	} else if (spool_job_cannot_run(j->j) && oc == SPOOL_RETRY) {
		/* the consumer's fault, not the message's: no attempt burnt */
		if (!c->cmd_broken)
			logmsg(LOG_ERR,
			       "consume %s: handler '%s' cannot run (%s): PAUSED, messages left in the "
			       "queue uncounted (fix the command, then SIGHUP; trying again in %ds)",
			       c->queue, c->cmd, desc, CMD_PAUSE / 1000);
		else
			logmsg(LOG_DEBUG, "consume %s: handler still cannot run (%s)", c->queue, desc);
		c->cmd_broken = true;
		c->rest_until = spool_now() + CMD_PAUSE;
	} else {
		if (c->cmd_broken)
			logmsg(LOG_INFO, "consume %s: the handler runs again", c->queue);
		c->cmd_broken = false;
		switch (oc) {
		case SPOOL_ACKED:
			r->n.handled++;
			logmsg(LOG_DEBUG, "%s: %s: done", c->queue, id);
			break;
		case SPOOL_RETRY:
			if (how >= 0)
				r->n.retried++;
			logmsg(how < 0 ? LOG_INFO : LOG_WARNING, "%s: %s: handler %s (attempt %u): %s",
			       c->queue, id, how < 0 ? "stopped" : "failed", attempt,
			       how < 0 ? "given back" : desc);
			break;
		case SPOOL_BURIED:
			r->n.dead++;
			logmsg(LOG_WARNING, "%s: %s: handler failed (%s, attempt %u): dead letter", c->queue,
			       id, desc, attempt);
			break;
		case SPOOL_LOST:
			logmsg(LOG_WARNING, "%s: %s: lease lost while the handler ran (%s)", c->queue, id,
			       desc);
			break;
		}
	}
	spool_job_free(j->j);
	work_remove(r, &j->w);
	free(j);
}

static void
on_exit_fd(void *arg, uint32_t events)
{
	(void)events;
	finish(arg);
}

static void
on_err_fd(void *arg, uint32_t events)
{
	struct job *j = arg;
	(void)events;
	spool_job_drain(j->j);
	if (spool_job_errfd(j->j) < 0) { /* its end: nothing more to watch */
		loop_io_del(j->r->loop, j->errio);
		j->errio = NULL;
	}
}

/* Heartbeat, timeout and the TERM-then-KILL escalation. */
static void
tend(void *arg)
{
	struct job *j = arg;
	struct relayd *r = j->r;
	struct spool_err e = {0};
	int64_t now = spool_now();
	spool_msg *m = spool_job_msg(j->j);
	if (spool_msg_next_tick(m) && now >= spool_msg_next_tick(m) && spool_msg_tick(m, &e) != 0)
		logmsg(LOG_WARNING, "%s: %s", j->w.c->queue, e.msg);
	bool over = j->w.c->timeout && now >= j->started + j->w.c->timeout;
	bool stop = r->stopping && now >= r->stop_deadline;
	if (j->signals == 0 && (over || stop)) {
		j->timed_out = over && !stop;
		logmsg(LOG_WARNING, "%s: %s: handler %s: sending TERM", j->w.c->queue, spool_msg_id(m),
		       j->timed_out ? "timed out" : "still running at shutdown");
		spool_job_kill(j->j, SIGTERM);
		j->signals = 1;
		j->kill_at = now + r->conf.kill_grace;
	} else if (j->signals == 1 && now >= j->kill_at) {
		spool_job_kill(j->j, SIGKILL);
		j->signals = 2;
	}
	arm(j);
}

void
exec_start(struct relayd *r, struct consumer *c, spool_msg *m)
{
	struct spool_err e = {0};
	char id[32];
	snprintf(id, sizeof id, "%s", spool_msg_id(m));
	unsigned attempt = spool_msg_attempt(m);
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		spool_release(m, &e);
		spool_msg_free(m);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	if (!(j->j = spool_job_start(m, c->cmd, SPOOL_JOB_PGRP, &e))) {
		/* m is freed by spool_job_start, and given back if fork failed */
		logmsg(LOG_ERR, "%s: %s: cannot run handler: %s", c->queue, id, e.msg);
		free(j);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	j->r = r;
	j->started = spool_now();
	loop_timer_init(&j->timer, tend, j);
	work_add(r, &j->w, c);
	if (!(j->io = loop_io_add(r->loop, spool_job_pidfd(j->j), EPOLLIN, on_exit_fd, j))) {
		/* unwatched, it would never be reaped: stop it and give it back */
		logmsg(LOG_ERR, "%s: %s: epoll_ctl: %s: stopping the handler", c->queue, id,
		       strerror(errno));
		spool_job_kill(j->j, SIGKILL);
		finish(j);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	if (spool_job_errfd(j->j) >= 0 &&
	    !(j->errio = loop_io_add(r->loop, spool_job_errfd(j->j), EPOLLIN, on_err_fd, j)))
		/* unread, a handler that writes much blocks: the timeout ends it */
		logmsg(LOG_WARNING, "%s: %s: epoll_ctl: %s: its stderr is not read until it ends",
		       c->queue, id, strerror(errno));
	arm(j);
	logmsg(LOG_DEBUG, "%s: %s: handler started (attempt %u, pid %d)", c->queue, id, attempt,
	       (int)spool_job_pid(j->j));
}

/* SIGTERM arrived: every handler's timer now also covers stop-timeout. */
void
exec_stop_all(struct relayd *r)
{
	for (struct work *w = r->work; w; w = w->next)
		if (w->c->kind == CONSUME_EXEC)
			arm((struct job *)w);
}

long
exec_running(const struct relayd *r)
{
	long n = 0;
	for (struct work *w = r->work; w; w = w->next)
		n += w->c->kind == CONSUME_EXEC;
	return n;
}
