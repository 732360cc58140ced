/* SPDX-License-Identifier: MIT */
/*
 * tend.c: when a running consumer does the time-driven work of a queue,
 * one policy for mq-recv -w/-f and mq-relayd (spool-layout.md 6.10): the
 * light repair once the earliest lease it saw has run out (a claimer that
 * died without a holder record), and, for a caller that asks, every so often
 * as well (a lease it could not have seen).  Events (inotify) bring the
 * rest; this is what time alone brings.
 */
#include "spool_priv.h"

long
spool_queue_tend(spool_queue *q, int64_t now, int64_t *next_repair, int64_t every,
                 struct spool_err *e)
{
	int64_t lease = spool_queue_next_lease(q);
	bool periodic = next_repair && *next_repair && now >= *next_repair;
	if (!periodic && !(lease && now >= lease))
		return 0;
	struct spool_repair rep;
	if (spool_repair(q, 0, &rep, e) != 0)
		return -1;
	if (next_repair && *next_repair)
		*next_repair = now + every;
	return rep.leases;
}

int64_t
spool_queue_wake_at(const spool_queue *q, int64_t t)
{
	int64_t lease = spool_queue_next_lease(q);
	return lease && (!t || lease < t) ? lease : t;
}
