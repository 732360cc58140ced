/* SPDX-License-Identifier: MIT */
/*
 * mq-relayd: the one long-running process of spoolmq.  It watches the queues
 * it serves and runs their consumers the moment a message arrives, each one
 * exactly as `mq-recv -x CMD` would (lib/job.c is shared).
 *
 * One process, one epoll loop: the inotify fd, a signalfd (HUP reloads, TERM
 * and INT stop), and one pidfd per running handler.  Time-driven work (a
 * delayed message falling due, a lease to extend or take back, a handler
 * timeout, the safety rescan) sets the epoll timeout: timers, not polling.
 * inotify is only a hint: every queue is read again at start, on overflow,
 * when a watch is lost, and on the periodic rescan.  After start-up the
 * loop does not die on recoverable errors: it logs them and backs off.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <syslog.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] = "usage: mq-relayd [-nsv] [-c file] [-d dir]\n";

#define DEFAULT_CONF "/etc/mq/relayd.conf"
#define REOPEN_EVERY 1000 /* ms between tries to reopen a queue that went away */
#define ERROR_BACKOFF 1000 /* ms a consumer rests after an error claiming */

struct consumer {
	char queue[65];
	char *cmd;
	long concurrency;
	int64_t timeout;       /* ms a handler may run; 0 = no limit */
	struct spool_config cfg; /* the queue's config with this consumer's overrides */
	char *overrides;       /* "key\0value\0..." as given, applied after the queue's config */
	size_t noverrides;
	spool_queue *q;        /* NULL while the queue is missing */
	long running;
	int64_t next_due;      /* earliest future message seen, 0 = none */
	int64_t rest_until;    /* after an error, or while the queue is missing */
	bool retired;          /* removed by a reload: finish what runs, claim nothing */
	bool gone;             /* its directory went away: reopen it when it is back, do not create */
	struct consumer *next;
};

struct job {
	spool_job *j;
	struct consumer *c;
	spool_queue *q;        /* the queue object the message belongs to */
	int64_t started, kill_at;
	int signals;           /* 0 running, 1 sent TERM, 2 sent KILL */
	bool timed_out;
	struct job *next;
};

struct conf {
	char *spool;
	int64_t rescan;        /* safety rescan period */
	int64_t stop_timeout;  /* how long SIGTERM waits for handlers */
	int64_t kill_grace;    /* TERM to KILL */
	struct consumer *consumers;
};

/* queue objects of retired consumers, kept while their handlers run */
struct dead_q {
	spool_queue *q;
	struct dead_q *next;
};

static struct {
	const char *conf_path, *dir;
	int verbose, use_syslog;
	struct conf conf;
	spool *sp;
	spool_watch *w;
	int ep, sigfd;
	struct job *jobs;
	struct dead_q *old_queues;
	int64_t next_rescan;
	bool stopping;
	int64_t stop_deadline;
} d;

/* ---- logging: one line per notable event ---- */

static void
logmsg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
logmsg(int prio, const char *fmt, ...)
{
	va_list ap;
	if (prio == LOG_DEBUG && !d.verbose)
		return;
	va_start(ap, fmt);
	if (d.use_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

/* ---- configuration ---- */

static void
consumer_free(struct consumer *k)
{
	free(k->cmd);
	free(k->overrides);
	free(k);
}

static void
conf_free(struct conf *c)
{
	struct consumer *n;
	for (struct consumer *k = c->consumers; k; k = n) {
		n = k->next;
		consumer_free(k);
	}
	free(c->spool);
	memset(c, 0, sizeof *c);
}

/* "key value" or "key = value" */
static char *
split(char *s)
{
	char *v = s + strcspn(s, " \t=");
	if (*v)
		*v++ = '\0';
	v = spool_trim(v);
	if (*v == '=')
		v = spool_trim(v + 1);
	return v;
}

static int
conf_err(struct spool_err *e, const char *path, int line, const char *fmt, const char *arg)
{
	char what[300];
	snprintf(what, sizeof what, fmt, arg);
	return spool_fail(e, EX_CONFIG, "%s:%d: %s", path, line, what);
}

static int
conf_duration(struct spool_err *e, const char *path, int line, const char *key, const char *v,
              int64_t *out)
{
	if ((*out = spool_parse_duration(v)) < 0) {
		char buf[200];
		snprintf(buf, sizeof buf, "bad duration for %s: '%.100s'", key, v);
		return conf_err(e, path, line, "%s", buf);
	}
	return 0;
}

static int
conf_read(const char *path, struct conf *c, struct spool_err *e)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;
	int line = 0;
	struct consumer *cur = NULL, **tail = &c->consumers;

	memset(c, 0, sizeof *c);
	c->rescan = 60 * 1000;
	c->stop_timeout = 30 * 1000;
	c->kill_grace = 5 * 1000;
	if (!f)
		return spool_fail(e, errno == ENOENT ? EX_CONFIG : spool_errno_code(errno),
		                  "read %s: %s", path, strerror(errno));
	while (getline(&buf, &cap, f) >= 0) {
		line++;
		bool indented = buf[0] == ' ' || buf[0] == '\t';
		char *s = spool_trim(buf);
		if (!*s || *s == '#')
			continue;
		char *v = split(s);
		if (indented && cur) { /* an option of the consume line above */
			struct spool_config probe = cur->cfg;
			if (strcmp(s, "concurrency") == 0) {
				char *end;
				long n = strtol(v, &end, 10);
				if (!*v || *end || n < 1 || n > 1024)
					goto bad_value;
				cur->concurrency = n;
			} else if (strcmp(s, "timeout") == 0) {
				if (conf_duration(e, path, line, s, v, &cur->timeout) != 0)
					goto fail;
			} else if (strcmp(s, "lease") == 0 || strcmp(s, "backoff") == 0 ||
			           strcmp(s, "max-attempts") == 0) {
				if (spool_config_set(&probe, s, v) != 0)
					goto bad_value;
				size_t add = strlen(s) + strlen(v) + 2, have = 0;
				for (size_t i = 0; i < cur->noverrides * 2; i++)
					have += strlen(cur->overrides + have) + 1;
				char *o = realloc(cur->overrides, have + add);
				if (!o)
					goto oom;
				strcpy(o + have, s);
				strcpy(o + have + strlen(s) + 1, v);
				cur->overrides = o;
				cur->noverrides++;
			} else {
				conf_err(e, path, line, "unknown consumer option '%s'", s);
				goto fail;
			}
			continue;
		}
		if (indented) {
			conf_err(e, path, line, "indented '%s' outside a consume block", s);
			goto fail;
		}
		cur = NULL;
		if (!*v) {
			conf_err(e, path, line, "%s: missing value", s);
			goto fail;
		}
		if (strcmp(s, "spool") == 0) {
			free(c->spool);
			if (!(c->spool = strdup(v)))
				goto oom;
		} else if (strcmp(s, "rescan") == 0) {
			if (conf_duration(e, path, line, s, v, &c->rescan) != 0)
				goto fail;
			if (c->rescan < 1000) {
				conf_err(e, path, line, "rescan: at least 1s, not '%.100s'", v);
				goto fail;
			}
		} else if (strcmp(s, "stop-timeout") == 0) {
			if (conf_duration(e, path, line, s, v, &c->stop_timeout) != 0)
				goto fail;
		} else if (strcmp(s, "kill-grace") == 0) {
			if (conf_duration(e, path, line, s, v, &c->kill_grace) != 0)
				goto fail;
		} else if (strcmp(s, "consume") == 0) {
			char *q = v, *cmd = v + strcspn(v, " \t");
			if (*cmd)
				*cmd++ = '\0';
			cmd = spool_trim(cmd);
			if (!spool_queue_name_ok(q)) {
				conf_err(e, path, line, "bad queue name '%s'", q);
				goto fail;
			}
			if (!*cmd) {
				conf_err(e, path, line, "consume %s: no command", q);
				goto fail;
			}
			if (!(cur = calloc(1, sizeof *cur)) || !(cur->cmd = strdup(cmd))) {
				free(cur);
				goto oom;
			}
			strcpy(cur->queue, q);
			cur->concurrency = 1;
			cur->timeout = 60 * 60 * 1000;
			*tail = cur;
			tail = &cur->next;
		} else {
			conf_err(e, path, line, "unknown directive '%s'", s);
			goto fail;
		}
		continue;
	bad_value:
		{
			char msg[200];
			snprintf(msg, sizeof msg, "bad value for %s: '%.100s'", s, v);
			conf_err(e, path, line, "%s", msg);
		}
		goto fail;
	}
	if (ferror(f) || !feof(f)) { /* getline's ENOMEM leaves no error flag */
		int err = errno ? errno : EIO;
		spool_fail(e, spool_errno_code(err), "read %s: %s", path, strerror(err));
		goto fail;
	}
	free(buf);
	fclose(f);
	if (!c->consumers) {
		conf_free(c);
		return spool_fail(e, EX_CONFIG, "%s: nothing to do (no consume line)", path);
	}
	return 0;
oom:
	spool_fail(e, EX_OSERR, "%s:%d: out of memory", path, line);
fail:
	free(buf);
	fclose(f);
	conf_free(c);
	return -1;
}

/* ---- queues of consumers ---- */

static void
apply_overrides(struct consumer *c)
{
	struct spool_config cfg = *spool_queue_config(c->q);
	const char *p = c->overrides;
	for (size_t i = 0; i < c->noverrides; i++) {
		const char *v = p + strlen(p) + 1;
		spool_config_set(&cfg, p, v); /* checked when the file was read */
		p = v + strlen(v) + 1;
	}
	spool_queue_set_config(c->q, &cfg);
}

/* Keep q alive while a handler of it runs; close it when none does. */
static void
drop_queue(spool_queue *q)
{
	if (!q)
		return;
	spool_watch_remove(d.w, q);
	for (struct job *j = d.jobs; j; j = j->next)
		if (j->q == q) {
			struct dead_q *o = malloc(sizeof *o);
			if (!o)
				return; /* leak it rather than free it under a running handler */
			o->q = q;
			o->next = d.old_queues;
			d.old_queues = o;
			return;
		}
	spool_queue_close(q);
}

static void
gc_queues(void)
{
	for (struct dead_q **p = &d.old_queues; *p;) {
		bool used = false;
		for (struct job *j = d.jobs; j && !used; j = j->next)
			used = j->q == (*p)->q;
		if (used) {
			p = &(*p)->next;
			continue;
		}
		struct dead_q *o = *p;
		*p = o->next;
		spool_queue_close(o->q);
		free(o);
	}
}

/* Open (creating it: a consumer's queue is expected to exist) and watch. */
static void
open_queue(struct consumer *c)
{
	struct spool_err e = {0};
	int64_t now = spool_now();
	if (c->q || c->retired || now < c->rest_until)
		return;
	if (!(c->q = spool_queue_open(d.sp, c->queue, c->gone ? 0 : SPOOL_CREATE, &e)) ||
	    spool_watch_add(d.w, c->q, &e) < 0) {
		if (!c->gone || e.code != EX_NOTFOUND)
			logmsg(LOG_ERR, "%s: %s (retrying)", c->queue, e.msg);
		spool_queue_close(c->q);
		c->q = NULL;
		c->rest_until = now + REOPEN_EVERY;
		return;
	}
	apply_overrides(c);
	c->next_due = 0;
	if (c->gone)
		logmsg(LOG_INFO, "%s: queue directory is back: watching it again", c->queue);
	c->gone = false;
	spool_queue_rescan(c->q);
	logmsg(LOG_DEBUG, "%s: watching %s/new", c->queue, spool_queue_path(c->q));
}

/* The queue's directory was removed or replaced: let go of it, and open it
 * again (without creating it) once it is back. */
static void
lose_queue(struct consumer *c)
{
	logmsg(LOG_WARNING, "%s: queue directory went away: watching for it to come back",
	       c->queue);
	drop_queue(c->q);
	c->q = NULL;
	c->gone = true;
	c->rest_until = spool_now() + REOPEN_EVERY / 4;
}

static void
on_watch(void *arg, spool_queue *q, enum spool_watch_event ev)
{
	(void)arg;
	if (ev == SPOOL_WATCH_OVERFLOW)
		logmsg(LOG_WARNING, "inotify queue overflowed: reading every queue again");
	for (struct consumer *c = d.conf.consumers; c; c = c->next) {
		if (ev == SPOOL_WATCH_OVERFLOW) {
			c->next_due = 0;
			continue;
		}
		if (c->q != q)
			continue;
		if (ev == SPOOL_WATCH_ARRIVED)
			c->next_due = 0;
		else
			lose_queue(c);
	}
}

/* inotify does not say when a directory we hold open is renamed away or its
 * parent removed: compare the path with what we hold, once a second. */
static void
check_queues(int64_t now)
{
	static int64_t next;
	if (now < next)
		return;
	next = now + REOPEN_EVERY;
	for (struct consumer *c = d.conf.consumers; c; c = c->next)
		if (c->q && !c->retired && spool_queue_stale(c->q))
			lose_queue(c);
}

/* ---- handlers ---- */

static void finish(struct job *j);

static void
start(struct consumer *c, spool_msg *m)
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
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = j};
	j->c = c;
	j->q = c->q;
	j->started = spool_now();
	j->next = d.jobs;
	d.jobs = j;
	c->running++;
	if (epoll_ctl(d.ep, EPOLL_CTL_ADD, spool_job_pidfd(j->j), &ev) != 0) {
		/* unwatched, it would never be reaped: stop it and give it back */
		logmsg(LOG_ERR, "%s: %s: epoll_ctl: %s: stopping the handler", c->queue, id,
		       strerror(errno));
		spool_job_kill(j->j, SIGKILL);
		finish(j);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	logmsg(LOG_DEBUG, "%s: %s: handler started (attempt %u, pid %d)", c->queue, id, attempt,
	       (int)spool_job_pid(j->j));
}

static void
finish(struct job *j)
{
	struct spool_err e = {0};
	enum spool_outcome oc;
	char desc[64], id[32];
	struct consumer *c = j->c;
	snprintf(id, sizeof id, "%s", spool_msg_id(spool_job_msg(j->j)));
	unsigned attempt = spool_msg_attempt(spool_job_msg(j->j));
	int how = j->timed_out ? 1 : (j->signals && d.stopping) ? -1 : 0;

	epoll_ctl(d.ep, EPOLL_CTL_DEL, spool_job_pidfd(j->j), NULL);
	if (spool_job_finish(j->j, how, &oc, desc, sizeof desc, &e) != 0) {
		logmsg(LOG_ERR, "%s: %s: %s", c->queue, id, e.msg);
	} else {
		switch (oc) {
		case SPOOL_ACKED:
			logmsg(LOG_DEBUG, "%s: %s: done", c->queue, id);
			break;
		case SPOOL_RETRY:
			logmsg(how < 0 ? LOG_INFO : LOG_WARNING, "%s: %s: handler %s (attempt %u): %s",
			       c->queue, id, how < 0 ? "stopped" : "failed", attempt,
			       how < 0 ? "given back" : desc);
			break;
		case SPOOL_BURIED:
			logmsg(LOG_WARNING, "%s: %s: handler failed (%s, attempt %u): dead letter", c->queue,
			       id, desc, attempt);
			break;
		case SPOOL_LOST:
			logmsg(LOG_WARNING, "%s: %s: lease lost while the handler ran (%s)", c->queue, id,
			       desc);
			break;
		}
	}
	for (struct job **p = &d.jobs; *p; p = &(*p)->next)
		if (*p == j) {
			*p = j->next;
			break;
		}
	c->running--;
	c->next_due = 0; /* a slot is free: look again */
	spool_job_free(j->j);
	free(j);
	gc_queues();
}

/* Heartbeats, timeouts and the TERM-then-KILL escalation. */
static void
tend_jobs(int64_t now)
{
	struct spool_err e = {0};
	for (struct job *j = d.jobs; j; j = j->next) {
		if (spool_job_next_tick(j->j) && now >= spool_job_next_tick(j->j) &&
		    spool_job_tick(j->j, &e) != 0)
			logmsg(LOG_WARNING, "%s: %s", j->c->queue, e.msg);
		bool over = j->c->timeout && now >= j->started + j->c->timeout;
		bool stop = d.stopping && now >= d.stop_deadline;
		if (j->signals == 0 && (over || stop)) {
			j->timed_out = over && !stop;
			logmsg(LOG_WARNING, "%s: %s: handler %s: sending TERM", j->c->queue,
			       spool_msg_id(spool_job_msg(j->j)),
			       j->timed_out ? "timed out" : "still running at shutdown");
			spool_job_kill(j->j, SIGTERM);
			j->signals = 1;
			j->kill_at = now + d.conf.kill_grace;
		} else if (j->signals == 1 && now >= j->kill_at) {
			spool_job_kill(j->j, SIGKILL);
			j->signals = 2;
		}
	}
}

/* *t becomes x when x is a time (not 0) before *t or *t is unset (0). */
static void
earlier(int64_t *t, int64_t x)
{
	if (x && (!*t || x < *t))
		*t = x;
}

static int64_t
job_deadline(void)
{
	int64_t t = 0;
	for (struct job *j = d.jobs; j; j = j->next) {
		earlier(&t, spool_job_next_tick(j->j));
		if (j->signals == 0 && j->c->timeout)
			earlier(&t, j->started + j->c->timeout);
		if (j->signals == 1)
			earlier(&t, j->kill_at);
	}
	if (d.stopping && d.jobs)
		earlier(&t, d.stop_deadline);
	return t;
}

/* Claim and start while the consumer has free slots. */
static void
dispatch(struct consumer *c, int64_t now)
{
	struct spool_err e = {0};
	if (c->retired || d.stopping || !c->q || now < c->rest_until)
		return;
	if (c->next_due && now < c->next_due)
		return;
	c->next_due = 0;
	while (c->running < c->concurrency) {
		spool_msg *m;
		int64_t due;
		int r = spool_claim(c->q, &m, &due, &e);
		if (r < 0) {
			logmsg(LOG_ERR, "%s: %s (resting %d ms)", c->queue, e.msg, ERROR_BACKOFF);
			c->rest_until = now + ERROR_BACKOFF;
			spool_queue_rescan(c->q);
			return;
		}
		if (r == 0) {
			c->next_due = due;
			return;
		}
		start(c, m);
	}
}

/* Read every queue again, take back expired leases: the safety net under inotify. */
static void
rescan(const char *why)
{
	struct spool_err e = {0};
	logmsg(why ? LOG_INFO : LOG_DEBUG, "rescanning every queue%s%s", why ? ": " : "",
	       why ? why : "");
	for (struct consumer *c = d.conf.consumers; c; c = c->next) {
		if (!c->q)
			continue;
		spool_queue_rescan(c->q);
		c->next_due = 0;
		struct spool_repair r;
		if (spool_repair(c->q, SPOOL_REPAIR_FULL, &r, &e) != 0)
			logmsg(LOG_ERR, "%s: %s", c->queue, e.msg);
		else if (r.leases || r.expired)
			logmsg(LOG_WARNING, "%s: took back %ld expired leases, buried %ld expired messages",
			       c->queue, r.leases, r.expired);
	}
	d.next_rescan = spool_now() + d.conf.rescan;
}

/* ---- reload ---- */

static int
load(struct conf *c, struct spool_err *e)
{
	if (conf_read(d.conf_path, c, e) != 0)
		return -1;
	if (d.dir) { /* -d wins over the file */
		free(c->spool);
		if (!(c->spool = strdup(d.dir)))
			return spool_fail(e, EX_OSERR, "out of memory");
	}
	return 0;
}

static void
reload(void)
{
	struct spool_err e = {0};
	struct conf nc;
	if (load(&nc, &e) != 0) {
		logmsg(LOG_ERR, "reload: %s: keeping the running configuration", e.msg);
		return;
	}
	if ((nc.spool || d.conf.spool) &&
	    (!nc.spool || !d.conf.spool || strcmp(nc.spool, d.conf.spool) != 0))
		logmsg(LOG_WARNING, "reload: the spool cannot change without a restart: ignored");
	free(nc.spool);
	nc.spool = d.conf.spool;
	d.conf.spool = NULL;
	/* a consumer of the same queue and command keeps its queue and its handlers */
	for (struct consumer *n = nc.consumers; n; n = n->next)
		for (struct consumer *o = d.conf.consumers; o; o = o->next)
			if (!o->retired && strcmp(o->queue, n->queue) == 0 && strcmp(o->cmd, n->cmd) == 0) {
				n->q = o->q;
				n->gone = o->gone;
				o->q = NULL;
				o->retired = true;
				for (struct job *j = d.jobs; j; j = j->next)
					if (j->c == o)
						j->c = n, n->running++, o->running--;
				if (n->q && spool_queue_reload(n->q, &e) != 0)
					logmsg(LOG_ERR, "reload: %s", e.msg);
				if (n->q)
					apply_overrides(n);
				break;
			}
	/* the rest: their handlers finish and report to a retired consumer */
	struct consumer *old = d.conf.consumers, *keep = NULL;
	for (struct consumer *o = old, *next; o; o = next) {
		next = o->next;
		drop_queue(o->q);
		o->q = NULL;
		o->retired = true;
		if (o->running) { /* still referenced by jobs: keep it (not in the config) */
			o->next = keep;
			keep = o;
		} else {
			consumer_free(o);
		}
	}
	d.conf.consumers = NULL;
	free(d.conf.spool);
	d.conf = nc;
	/* retired consumers with running handlers go at the end of the list */
	struct consumer **tail = &d.conf.consumers;
	while (*tail)
		tail = &(*tail)->next;
	*tail = keep;
	long n = 0;
	for (struct consumer *c = d.conf.consumers; c; c = c->next)
		n += !c->retired;
	logmsg(LOG_INFO, "reloaded %s: %ld consumers", d.conf_path, n);
	rescan(NULL);
}

static void
forget_retired(void)
{
	for (struct consumer **p = &d.conf.consumers; *p;) {
		struct consumer *c = *p;
		if (c->retired && c->running == 0) {
			*p = c->next;
			drop_queue(c->q);
			consumer_free(c);
		} else {
			p = &c->next;
		}
	}
}

/* ---- the loop ---- */

static void
on_signal(void)
{
	struct signalfd_siginfo si;
	while (read(d.sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			logmsg(LOG_INFO, "SIGHUP: reloading %s", d.conf_path);
			reload();
		} else if (!d.stopping) {
			d.stopping = true;
			d.stop_deadline = spool_now() + d.conf.stop_timeout;
			long n = 0;
			for (struct job *j = d.jobs; j; j = j->next)
				n++;
			logmsg(LOG_INFO, "%s: stopping: no new claims, waiting up to %llds for %ld handlers",
			       strsignal((int)si.ssi_signo), (long long)d.conf.stop_timeout / 1000, n);
		}
	}
}

static int
loop(void)
{
	struct spool_err e = {0};
	struct epoll_event evs[64];

	rescan(NULL);
	for (;;) {
		int64_t now = spool_now();
		for (struct consumer *c = d.conf.consumers; c; c = c->next) {
			open_queue(c);
			dispatch(c, now);
		}
		if (d.stopping && !d.jobs)
			return 0;

		/* sleep until the next thing that time alone brings */
		int64_t until = d.stopping ? 0 : d.next_rescan;
		earlier(&until, job_deadline());
		for (struct consumer *c = d.conf.consumers; c; c = c->next) {
			if (c->retired)
				continue;
			if (c->q && c->running < c->concurrency && !d.stopping)
				earlier(&until, c->next_due);
			earlier(&until, c->rest_until > now ? c->rest_until : 0);
			if (!c->q && !c->rest_until)
				earlier(&until, now + REOPEN_EVERY);
			if (c->q)
				earlier(&until, now + REOPEN_EVERY); /* check_queues */
			if (c->q)
				earlier(&until, spool_queue_next_lease(c->q));
		}
		int timeout = -1;
		if (until) {
			int64_t ms = until - spool_now();
			timeout = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
		}
		int n = epoll_wait(d.ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			logmsg(LOG_ERR, "epoll_wait: %s", strerror(errno));
			sleep(1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			void *p = evs[i].data.ptr;
			if (p == &d.w) {
				if (spool_watch_read(d.w, on_watch, NULL, &e) < 0)
					logmsg(LOG_ERR, "%s", e.msg);
			} else if (p == &d.sigfd) {
				on_signal();
			} else {
				finish(p);
			}
		}
		now = spool_now();
		tend_jobs(now);
		check_queues(now);
		forget_retired();
		if (!d.stopping && now >= d.next_rescan)
			rescan(NULL);
		/* leases of others (a dead mq-recv, a killed daemon) that expired */
		for (struct consumer *c = d.conf.consumers; c; c = c->next) {
			int64_t t = c->q ? spool_queue_next_lease(c->q) : 0;
			if (t && now >= t && !c->retired) {
				struct spool_repair r;
				if (spool_repair(c->q, 0, &r, &e) != 0)
					logmsg(LOG_ERR, "%s: %s", c->queue, e.msg);
				else if (r.leases)
					logmsg(LOG_WARNING, "%s: took back %ld expired leases", c->queue, r.leases);
				c->next_due = 0;
			}
		}
	}
}

static int
add_fd(int fd, void *tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
	return epoll_ctl(d.ep, EPOLL_CTL_ADD, fd, &ev);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	struct spool_err e = {0};
	int check = 0, c;

	cli_init(argv[0], usage);
	d.conf_path = DEFAULT_CONF;
	while ((c = getopt_long(argc, argv, "c:d:hnsv", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': d.conf_path = optarg; break;
		case 'd': d.dir = optarg; break;
		case 'h': cli_usage(1);
		case 'n': check = 1; break;
		case 's': d.use_syslog = 1; break;
		case 'v': d.verbose = 1; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	if (optind != argc)
		cli_usage(0);
	if (load(&d.conf, &e) != 0)
		cli_fail(&e);
	if (check) {
		long n = 0;
		for (struct consumer *k = d.conf.consumers; k; k = k->next)
			n++;
		printf("%s: ok: %ld consumers\n", d.conf_path, n);
		return 0;
	}
	if (d.use_syslog)
		openlog(prog, LOG_PID, LOG_DAEMON);

	if (!(d.sp = spool_open(d.conf.spool, SPOOL_CREATE, &e)) || !(d.w = spool_watch_new(&e)))
		cli_fail(&e);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((d.sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (d.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 || add_fd(spool_watch_fd(d.w), &d.w) != 0 ||
	    add_fd(d.sigfd, &d.sigfd) != 0)
		cli_die(EX_OSERR, "set up the event loop: %s", strerror(errno));
	long n = 0;
	for (struct consumer *k = d.conf.consumers; k; k = k->next) {
		open_queue(k);
		n++;
	}
	logmsg(LOG_INFO, "started: %ld consumers, spool %s", n, spool_root(d.sp));
	int rc = loop();
	logmsg(LOG_INFO, "stopped");
	for (struct consumer *k = d.conf.consumers; k; k = k->next)
		drop_queue(k->q), k->q = NULL;
	gc_queues();
	conf_free(&d.conf);
	spool_watch_free(d.w);
	spool_close(d.sp);
	close(d.ep);
	close(d.sigfd);
	return rc;
}
