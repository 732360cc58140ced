/* SPDX-License-Identifier: MIT */
/*
 * claim.c: claiming, the first state change of a message after it was sent
 * (spool-layout.md, "State changes"): new/ -> cur/ under a lease, one
 * rename.  Whoever renames first wins; the loser sees ENOENT and tries the
 * next name, so consumers need no lock.  Also the listing of new/ a
 * consumer keeps between claims, and the head hint that spares a one-shot
 * consumer reading all of new/.  The other changes are in settle.c (ack,
 * nack, give back, extend), bury.c (into dead/) and repair.c (leases taken
 * back, sweeps).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "spool_priv.h"

bool
name_expired(const spool_queue *q, const struct spool_name *n, int64_t now)
{
	return (n->exp && n->exp <= now) ||
	       (q->cfg.retention > 0 && n->t + q->cfg.retention <= now);
}

/* Rename fromfd/from into cur/ under name n; 1 done, 0 gone (someone else), -1. */
int
move_to_cur(spool_queue *q, int fromfd, const char *from, const struct spool_name *n,
            spool_msg **out, struct spool_err *e)
{
	char to[NAME_LEN];
	name_format(to, sizeof to, n);
	if (renameat(fromfd, from, q->curfd, to) != 0) {
		if (errno == ENOENT)
			return 0;
		return spool_fail_errno(e, errno, "rename %s to cur/%s", from, to);
	}
	if (!(*out = msg_new(q, n, e)))
		return -1;
	holder_add(*out);
	return 1;
}

/*
 * The head hint, QUEUE/.head: a cache of the oldest ready names, so that a
 * one-shot consumer of a large backlog need not read all of new/ (the
 * kernel's readdir alone costs ~0.4 us a name: 40 ms for 100,000).  Whoever
 * reads new/ and finds at least HINT_MIN names writes the HINT_K smallest
 * ready ones; a consumer starting up tries those first and reads new/ only
 * when every one is gone.  It changes no state and may be deleted at any
 * time.  It cannot break FIFO order: every message that reaches new/ after
 * the hint was written has a due time after it (sends, retries and replays
 * are due no earlier than now), so it sorts after every name in the hint.
 */
#define HINT_MIN 2048
#define HINT_K 256

static void
hint_write(spool_queue *q, int64_t now)
{
	struct name_list *l = &q->ready;
	if (l->n - l->pos < HINT_MIN) {
		/* only when one was seen: no syscall per claim on a small queue */
		if (q->hint_seen)
			unlinkat(q->fd, ".head", 0);
		q->hint_seen = false;
		return;
	}
	char *best[HINT_K], tmp[64], buf[HINT_K * NAME_LEN];
	size_t k = list_smallest(l, best, HINT_K), len = 0;
	struct spool_name n;
	for (size_t i = 0; i < k && name_parse(best[i], &n) == 0 && n.t <= now; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s\n", best[i]);
	snprintf(tmp, sizeof tmp, ".head.%d", (int)getpid());
	int fd = spool_open_file(q->fd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666, NULL);
	if (fd < 0)
		return; /* only a cache */
	int ok = write_all(fd, buf, len) == 0;
	close(fd);
	if (ok && renameat(q->fd, tmp, q->fd, ".head") == 0)
		q->hint_seen = true;
	else
		unlinkat(q->fd, tmp, 0);
}

/* 1 when the listing now holds the hint's names, 0 when there is none. */
static int
hint_read(spool_queue *q)
{
	char buf[HINT_K * NAME_LEN];
	q->hint_tried = true;
	int fd = spool_open_file(q->fd, ".head", O_RDONLY, 0, NULL);
	if (fd < 0)
		return 0;
	q->hint_seen = true;
	ssize_t r = read(fd, buf, sizeof buf);
	close(fd);
	if (r <= 0 || list_load(&q->ready, buf, (size_t)r) != 0 || q->ready.n == 0)
		return list_clear(&q->ready), 0;
	q->ready.hint = true;
	return 1;
}

void
spool_queue_rescan(spool_queue *q)
{
	q->ready.valid = false;
}

void
spool_queue_arrived(spool_queue *q, const char *name)
{
	if (q->ready.valid)
		list_insert(&q->ready, name);
}

int
spool_claim(spool_queue *q, spool_msg **out, int64_t *next_due, struct spool_err *e)
{
	struct name_list *l = &q->ready;
	struct spool_name n;
	bool rescanned = false;

	*out = NULL;
	if (next_due)
		*next_due = 0;
	if (!q->repaired && spool_repair(q, 0, NULL, e) < 0)
		return -1;
	for (;;) {
		/* the next messages of keys this consumer finished, claimed already (key.c) */
		for (spool_msg *p; (p = key_pending(q));) {
			if (p->n.exp && p->n.exp <= spool_now()) {
				int r = spool_bury(p, "expired", NULL, e);
				spool_msg_free(p);
				if (r < 0)
					return -1;
				continue;
			}
			int r = claim_check(p, e);
			if (r > 0) {
				*out = p;
				return 1;
			}
			spool_msg_free(p);
			if (r < 0)
				return -1;
		}
		if (!l->valid && !(!q->hint_tried && hint_read(q))) {
			if (list_scan(l, q->newfd, e) != 0)
				return -1;
			rescanned = true;
			hint_write(q, spool_now());
		}
		const char *name = list_peek(l);
		if (!name) {
			/* What was listed is used up; messages may have come since.
			 * A hint used up says nothing: read new/ itself. */
			if (!l->hint && (rescanned || l->takes == 0))
				return 0;
			l->valid = false;
			continue;
		}
		int64_t now = spool_now();
		if (name_parse(name, &n) != 0) {
			list_next(l); /* not a message: left alone */
			continue;
		}
		if (n.t > now) {
			if (l->hint) { /* the hint is used up; what it did not name is in new/ */
				l->valid = false;
				continue;
			}
			if (next_due)
				*next_due = n.t;
			return 0;
		}
		if (name_expired(q, &n, now)) {
			int r = bury_from(q, q->newfd, name, &n, "expired", NULL, e);
			list_next(l);
			if (r < 0)
				return -1;
			continue;
		}
		struct spool_name cn = n;
		cn.t = now + q->cfg.lease;
		/* unlimited attempts stop counting where a name can hold them */
		cn.attempts = n.attempts < ATTEMPTS_MAX ? n.attempts + 1 : ATTEMPTS_MAX;
		int r = move_to_cur(q, q->newfd, name, &cn, out, e);
		list_next(l);
		if (r == 0)
			continue; /* ENOENT: another consumer was faster; try the next one */
		if (r > 0 && *out && (r = claim_check(*out, e)) > 0 && (*out)->kenc)
			r = key_enter(*out, e); /* 0: it waits behind its key's head */
		if (r > 0)
			return 1;
		/* set aside (not a message that can be delivered), or waiting
		 * behind its key: go on; or an error (left claimed) */
		spool_msg_free(*out);
		*out = NULL;
		if (r < 0)
			return -1;
	}
}
