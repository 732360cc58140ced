/* SPDX-License-Identifier: MIT */
/*
 * queues.c: the queues that consumers serve.  Each consumer holds its queue
 * open and watched (inotify, lib/watch.c); an arrival, a free slot or a
 * deadline (a delayed message falling due, a lease of someone else's to take
 * back, the end of a rest after an error) wakes it, and it claims while it
 * has free slots, handing each message to its kind: exec.c or forward.c.
 * A paused queue (its marker QUEUE/paused) is held: nothing is claimed
 * until the marker goes, which the watch tells as an event.
 * inotify is only a hint: every queue is read again at start, on overflow,
 * when a watch is lost, and on the periodic rescan; a directory renamed away
 * or replaced is noticed by a check once a second.
 */
#include <stdlib.h>
#include <string.h>

#include "relayd.h"

void
queues_apply_overrides(struct consumer *c)
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

void
work_add(struct relayd *r, struct work *w, struct consumer *c)
{
	w->c = c;
	w->q = c->q;
	w->next = r->work;
	r->work = w;
	c->running++;
}

void
work_remove(struct relayd *r, struct work *w)
{
	for (struct work **p = &r->work; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	w->c->running--;
	consumer_poke(r, w->c, spool_now()); /* a slot is free: look again */
	queues_gc(r);
}

void
consumer_poke(struct relayd *r, struct consumer *c, int64_t at)
{
	(void)r;
	if (!at || at <= spool_now())
		c->next_due = 0;
	else if (!c->next_due || at < c->next_due)
		c->next_due = at;
}

/* Keep q alive while a delivery of it runs; close it when none does. */
void
queues_drop(struct relayd *r, spool_queue *q)
{
	if (!q)
		return;
	spool_watch_remove(r->w, q);
	for (struct work *w = r->work; w; w = w->next)
		if (w->q == q) {
			struct old_queue *o = malloc(sizeof *o);
			if (!o)
				return; /* leak it rather than free it under a running delivery */
			o->q = q;
			o->next = r->old_queues;
			r->old_queues = o;
			return;
		}
	spool_queue_close(q);
}

void
queues_gc(struct relayd *r)
{
	for (struct old_queue **p = &r->old_queues; *p;) {
		bool used = false;
		for (struct work *w = r->work; w && !used; w = w->next)
			used = w->q == (*p)->q;
		if (used) {
			p = &(*p)->next;
			continue;
		}
		struct old_queue *o = *p;
		*p = o->next;
		spool_queue_close(o->q);
		free(o);
	}
}

/* Open (creating it: a consumer's queue is expected to exist) and watch. */
void
queues_open(struct relayd *r, struct consumer *c)
{
	struct spool_err e = {0};
	int64_t now = spool_now();
	if (c->q || c->retired || now < c->rest_until)
		return;
	if ((c->q = spool_queue_open(r->sp, c->queue, c->gone ? 0 : SPOOL_CREATE, &e)))
		spool_queue_hold(c->q); /* our claims come back at once if we are killed */
	if (!c->q || spool_watch_add(r->w, c->q, &e) < 0) {
		if (!c->gone || e.code != EX_NOTFOUND)
			logmsg(LOG_ERR, "%s: %s (retrying)", c->queue, e.msg);
		spool_queue_close(c->q);
		c->q = NULL;
		c->rest_until = now + REOPEN_EVERY;
		return;
	}
	queues_apply_overrides(c);
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
lose_queue(struct relayd *r, struct consumer *c)
{
	logmsg(LOG_WARNING, "%s: queue directory went away: watching for it to come back",
	       c->queue);
	queues_drop(r, c->q);
	c->q = NULL;
	c->gone = true;
	c->rest_until = spool_now() + REOPEN_EVERY / 4;
}

static void
on_event(void *arg, spool_queue *q, enum spool_watch_event ev)
{
	struct relayd *r = arg;
	if (ev == SPOOL_WATCH_OVERFLOW)
		logmsg(LOG_WARNING, "inotify queue overflowed: reading every queue again");
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (ev == SPOOL_WATCH_OVERFLOW) {
			c->next_due = 0;
			continue;
		}
		if (c->q != q)
			continue;
		if (ev == SPOOL_WATCH_ARRIVED || ev == SPOOL_WATCH_PAUSE)
			c->next_due = 0; /* dispatch looks at the pause marker */
		else
			lose_queue(r, c);
	}
}

void
queues_on_watch(void *arg, uint32_t events)
{
	struct relayd *r = arg;
	struct spool_err e = {0};
	(void)events;
	if (spool_watch_read(r->w, on_event, r, &e) < 0)
		logmsg(LOG_ERR, "%s", e.msg);
}

/* inotify does not say when a directory we hold open is renamed away or its
 * parent removed: compare the path with what we hold, once a second. */
static void
on_check(void *arg)
{
	struct relayd *r = arg;
	bool any = false;
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (c->q && !c->retired && spool_queue_stale(c->q))
			lose_queue(r, c);
		any |= !c->retired;
	}
	if (any)
		loop_timer_set(r->loop, &r->check_timer, spool_now() + REOPEN_EVERY);
}

/* Claim and start while the consumer has free slots. */
static void
dispatch(struct relayd *r, struct consumer *c, int64_t now)
{
	struct spool_err e = {0};
	if (c->retired || r->stopping || !c->q || now < c->rest_until)
		return;
	if (c->next_due && now < c->next_due)
		return;
	c->next_due = 0;
	/* paused: hold until the marker goes, which is an event (watch.c);
	 * what runs finishes */
	bool paused = spool_queue_paused(c->q) == 1;
	if (paused != c->paused)
		logmsg(LOG_INFO, paused ? "%s: queue paused: claiming nothing until mq-pause -u"
		                        : "%s: queue resumed", c->queue);
	c->paused = paused;
	if (paused)
		return;
	while (c->running < consumer_width(c) && now >= c->rest_until) {
		spool_msg *m;
		int64_t due;
		int rc = spool_claim(c->q, &m, &due, &e);
		if (rc < 0) {
			logmsg(LOG_ERR, "%s: %s (resting %d ms)", c->queue, e.msg, ERROR_BACKOFF);
			c->rest_until = now + ERROR_BACKOFF;
			spool_queue_rescan(c->q);
			break;
		}
		if (rc == 0) {
			c->next_due = due;
			break;
		}
		if (c->kind == CONSUME_EXEC)
			exec_start(r, c, m);
		else
			forward_start(r, c, m);
	}
	if (c->kind == CONSUME_FORWARD) /* what was claimed together goes together */
		forward_flush(r, c);
}

/* Leases of others (a dead mq-recv, a killed daemon) that expired. */
static void
take_back(struct consumer *c, int64_t now)
{
	struct spool_err e = {0};
	if (!c->q || c->retired)
		return;
	long back = spool_queue_tend(c->q, now, NULL, 0, &e); /* the periodic one: queues_rescan */
	if (back < 0)
		logmsg(LOG_ERR, "%s: %s", c->queue, e.msg);
	else if (back > 0)
		logmsg(LOG_WARNING, "%s: took back %ld expired leases", c->queue, back);
	if (back != 0)
		c->next_due = 0;
}

static void
on_wake(void *arg)
{
	(void)arg; /* queues_pass, run after every batch of the loop, does the work */
}

void
queues_pass(struct relayd *r)
{
	int64_t now = spool_now();
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (c->retired)
			continue;
		if (!c->wake.fn)
			loop_timer_init(&c->wake, on_wake, c);
		queues_open(r, c);
		take_back(c, now);
		dispatch(r, c, now);
		/* the next time that time alone brings this consumer something */
		int64_t t = 0;
		if (c->q && c->running < consumer_width(c) && !r->stopping && now >= c->rest_until)
			earlier(&t, c->next_due);
		earlier(&t, c->rest_until > now ? c->rest_until : 0);
		if (!c->q && !c->rest_until)
			earlier(&t, now + REOPEN_EVERY);
		if (c->q)
			t = spool_queue_wake_at(c->q, t);
		loop_timer_set(r->loop, &c->wake, t);
	}
	if (!loop_timer_armed(&r->check_timer))
		on_check(r);
}

/* Read every queue again, take back expired leases: the safety net under inotify. */
void
queues_rescan(struct relayd *r, const char *why)
{
	struct spool_err e = {0};
	logmsg(why ? LOG_INFO : LOG_DEBUG, "rescanning every queue%s%s", why ? ": " : "",
	       why ? why : "");
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (!c->q)
			continue;
		spool_queue_rescan(c->q);
		c->next_due = 0;
		struct spool_repair rep; /* the light one: the full one is mq-stat --repair's (6.10) */
		if (spool_repair(c->q, 0, &rep, &e) != 0)
			logmsg(LOG_ERR, "%s: %s", c->queue, e.msg);
		else if (rep.leases)
			logmsg(LOG_WARNING, "%s: took back %ld expired leases", c->queue, rep.leases);
	}
	loop_timer_set(r->loop, &r->rescan_timer, spool_now() + r->conf.rescan);
}

static void
on_rescan(void *arg)
{
	struct relayd *r = arg;
	if (!r->stopping)
		queues_rescan(r, NULL);
}

void
queues_forget_retired(struct relayd *r)
{
	for (struct consumer **p = &r->conf.consumers; *p;) {
		struct consumer *c = *p;
		if (c->retired && c->running == 0) {
			*p = c->next;
			loop_timer_set(r->loop, &c->wake, 0);
			queues_drop(r, c->q);
			forward_free(r, c);
			consumer_free(c);
		} else {
			p = &c->next;
		}
	}
}

void
queues_init(struct relayd *r)
{
	loop_timer_init(&r->rescan_timer, on_rescan, r);
	loop_timer_init(&r->check_timer, on_check, r);
}
