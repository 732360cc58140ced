/* SPDX-License-Identifier: MIT */
/*
 * settle.c: holding a claimed message and settling its delivery, the part
 * every kind of consumer shares (a handler run by job.c, an HTTP transfer
 * of mq-relayd's forward).  Holding: the lease is extended when half of it
 * is left (a heartbeat), and once an extension finds the message gone the
 * lease is lost for good.  Settling: the consumer's verdict (ack, retry,
 * bury, or give back uncounted) becomes one state change, and a lease lost
 * on the way is reported as SPOOL_LOST rather than as an error.
 */
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
