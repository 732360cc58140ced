/* SPDX-License-Identifier: MIT */
/*
 * settle.c: holding a claimed message and settling its delivery, the part
 * every kind of consumer shares (a handler run by job.c, an HTTP transfer
 * of mq-relayd's forward).  Holding: the lease is extended when half of it
 * is left (a heartbeat), and once an extension finds the message gone the
 * lease is lost for good.  Settling: the consumer's verdict (ack, retry,
 * bury, or give back uncounted) becomes one state change, and a lease lost
 * on the way is reported as SPOOL_LOST rather than as an error.  The state
 * changes themselves are here too, but burial (bury.c): ack (unlink, or
 * rename to done/), nack and give back (cur/ -> new/), extend (within
 * cur/), each one rename of the claim (spool-layout.md, "State changes")
 * that finds it gone (ENOENT) when the lease was lost.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "spool_priv.h"

static int64_t
tick_at(const spool_msg *m)
{
	return m->n.t - m->q->cfg.lease / 2;
}

int64_t
spool_msg_next_tick(const spool_msg *m)
{
	if (m->lost || m->done)
		return 0;
	return m->next_tick ? m->next_tick : tick_at(m);
}

int
spool_msg_tick(spool_msg *m, struct spool_err *e)
{
	int64_t now = spool_now();
	if (m->lost || m->done || now < spool_msg_next_tick(m))
		return 0;
	if (spool_extend(m, m->q->cfg.lease, e) != 0) {
		if (e && e->code == EX_NOTFOUND)
			m->lost = true;
		else
			m->next_tick = now + 1000; /* try again in a second, not at once */
		return -1;
	}
	m->next_tick = tick_at(m);
	return 0;
}

int
spool_msg_lost(const spool_msg *m)
{
	return m->lost;
}

int
spool_settle(spool_msg *m, const struct spool_verdict *v, enum spool_outcome *out,
             struct spool_err *e)
{
	int r;
	*out = SPOOL_LOST;
	if (m->lost)
		return 0;
	switch (v->what) {
	case SPOOL_DO_ACK:
		r = spool_ack(m, e);
		*out = SPOOL_ACKED;
		break;
	case SPOOL_DO_BURY:
		r = spool_bury(m, v->reason, v->status, e);
		*out = SPOOL_BURIED;
		break;
	case SPOOL_DO_DEFER:
		r = spool_defer(m, v->delay, e);
		*out = SPOOL_RETRY;
		break;
	case SPOOL_DO_RETRY:
	default:
		if ((r = spool_nack(m, v->delay, v->status, e)) >= 0)
			*out = r == 1 ? SPOOL_BURIED : SPOOL_RETRY;
		break;
	}
	if (r < 0 && e && e->code == EX_NOTFOUND) {
		m->lost = true;
		*out = SPOOL_LOST;
		return 0;
	}
	return r < 0 ? -1 : 0;
}

int64_t
backoff_delay(const struct spool_config *c, unsigned attempt)
{
	int64_t d = c->backoff_first;
	for (unsigned i = 1; i < attempt && d < c->backoff_cap; i++)
		d = d > c->backoff_cap / 2 ? c->backoff_cap : d * 2;
	if (d > c->backoff_cap)
		d = c->backoff_cap;
	/* "equal jitter": at least half the delay, so retries never bunch at 0 */
	return d / 2 + random_below(d - d / 2 + 1);
}

static int
lost(spool_msg *m, struct spool_err *e)
{
	return spool_fail(e, EX_NOTFOUND, "%s: lease lost: someone else may have it now", m->n.id);
}

/* Each settling but a plain ack is one rename of m's claim, cur/NAME to
 * dir/to (tofd): 0, or -1 with e set, EX_NOTFOUND when the claim is gone
 * (ENOENT: the lease was lost, someone else renamed it first). */
static int
rename_claim(spool_msg *m, int tofd, const char *dir, const char *to, struct spool_err *e)
{
	if (renameat(m->q->curfd, m->name, tofd, to) == 0)
		return 0;
	if (errno == ENOENT)
		return lost(m, e);
	return spool_fail_errno(e, errno, "rename cur/%s to %s/%s", m->name, dir, to);
}

int
spool_ack(spool_msg *m, struct spool_err *e)
{
	spool_queue *q = m->q;
	if (m->done)
		return 0;
	if (!m->kenc && m->fd < 0) { /* its ordering key, if any, is in its header */
		struct spool_err oe = {0};
		if (msg_open(m, &oe) != 0 && errno == ENOENT)
			return lost(m, e);
	}
	if (q->cfg.keep_acked > 0) {
		int fd = subdir_fd(q, "done", e);
		if (fd < 0)
			return -1;
		struct spool_name dn = m->n;
		char to[NAME_LEN];
		dn.t = spool_now();
		name_format(to, sizeof to, &dn);
		if (rename_claim(m, fd, "done", to, e) != 0)
			return -1;
	} else if (unlinkat(q->curfd, m->name, 0) != 0) {
		return errno == ENOENT ? lost(m, e) : spool_fail_errno(e, errno, "unlink cur/%s", m->name);
	}
	m->done = true;
	if (m->n.attempts > 1) /* a delivery before this one failed: its reason goes */
		reason_remove(q, m->n.id);
	key_advance(m); /* its key goes to the next message */
	return 0;
}

int
spool_nack(spool_msg *m, int64_t delay, const char *why, struct spool_err *e)
{
	spool_queue *q = m->q;
	if (q->cfg.max_attempts && m->n.attempts >= (unsigned)q->cfg.max_attempts)
		return spool_bury(m, "max attempts", why, e) == 0 ? 1 : -1;
	struct spool_name nn = m->n;
	char to[NAME_LEN];
	nn.t = spool_now() + (delay >= 0 ? delay : backoff_delay(&q->cfg, m->n.attempts));
	name_format(to, sizeof to, &nn);
	/* the reason first, so a retry in new/ always has one (6.13) */
	reason_write(q, m, why, nn.t);
	if (rename_claim(m, q->newfd, "new", to, e) != 0)
		return -1;
	m->done = true;
	return 0;
}

int
spool_release(spool_msg *m, struct spool_err *e)
{
	return spool_defer(m, 0, e);
}

int
spool_defer(spool_msg *m, int64_t delay, struct spool_err *e)
{
	struct spool_name nn = m->n;
	char to[NAME_LEN];
	nn.t = name_time(spool_now() + (delay > 0 ? delay : 0));
	if (nn.attempts > 0)
		nn.attempts--;
	name_format(to, sizeof to, &nn);
	if (rename_claim(m, m->q->newfd, "new", to, e) != 0)
		return -1;
	m->done = true;
	return 0;
}

int
spool_extend(spool_msg *m, int64_t dur, struct spool_err *e)
{
	struct spool_name nn = m->n;
	char to[NAME_LEN];
	nn.t = spool_now() + dur;
	name_format(to, sizeof to, &nn);
	if (strcmp(to, m->name) == 0)
		return 0;
	if (rename_claim(m, m->q->curfd, "cur", to, e) != 0)
		return -1;
	if (msg_renamed(m, &nn) != 0)
		return spool_fail_errno(e, ENOMEM, "extend");
	holder_note(m);
	return 0;
}
