/* SPDX-License-Identifier: MIT */
/*
 * repair.c: the state changes nobody asked for, that any process may make
 * at any time (spool-layout.md 6.8): claims whose lease expired, or whose
 * holder died (holder.c finds those), taken back into new/ (or buried past
 * max-attempts); and, in a full repair (mq-stat --repair), expired messages
 * buried and what outlived its time in tmp/, done/, dead/, ids/ and
 * received/ swept.  Each is the same rename a consumer would make, so a
 * repair racing a consumer loses cleanly (ENOENT) rather than doing a thing
 * twice.  When a running consumer repairs is tend.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

/* Take back the claim cur/name of someone else's (6.8): a nack due at due,
 * the delivery counted, or past max-attempts a burial with status as
 * Dead-Status.  1 done, 0 gone (someone else was faster), -1. */
int
take_back(spool_queue *q, const char *name, const struct spool_name *n, int64_t due,
          const char *status, struct spool_err *e)
{
	if (q->cfg.max_attempts && n->attempts >= (unsigned)q->cfg.max_attempts)
		return bury_from(q, q->curfd, name, n, "max attempts", status, e);
	struct spool_name nn = *n;
	char to[NAME_LEN];
	nn.t = name_time(due);
	name_format(to, sizeof to, &nn);
	reason_write(q, &(spool_msg){.n = *n}, status, nn.t); /* before: never a retry without */
	if (renameat(q->curfd, name, q->newfd, to) != 0)
		return errno == ENOENT ? 0 : spool_fail_errno(e, errno, "rename cur/%s to new/%s", name, to);
	spool_queue_arrived(q, to);
	return 1;
}

/* Something a repair could not mend: counted, and the first reason kept. */
static void
repair_failed(struct spool_repair *r, int err)
{
	r->failed++;
	if (!r->err)
		r->err = err ? err : EIO;
}

/* Claims of holders that died (holder.c), then expired leases in cur/:
 * each one a nack (or a burial past max-attempts). */
static int
repair_leases(spool_queue *q, int64_t now, struct spool_repair *r, struct spool_err *e)
{
	struct name_list l = {0};
	struct spool_name n;
	int rc = 0;

	if (list_scan(&l, q->curfd, e) != 0)
		return -1;
	holders_reap(q, &l, now, r, e);
	for (size_t i = 0; i < l.n; i++) {
		if (name_parse(l.v[i], &n) != 0)
			continue;
		if (n.t > now) {
			if (!r->next_lease || n.t < r->next_lease)
				r->next_lease = n.t;
			continue;
		}
		rc = take_back(q, l.v[i], &n, now + backoff_delay(&q->cfg, n.attempts),
		               "lease expired", e);
		if (rc > 0)
			r->leases++;
		else if (rc < 0)
			repair_failed(r, errno); /* one bad message must not stop the others */
	}
	list_clear(&l);
	return 0;
}

/* Messages in new/ past their expiry that no consumer has come for. */
static int
repair_expired(spool_queue *q, int64_t now, struct spool_repair *r, struct spool_err *e)
{
	struct name_list l = {0};
	struct spool_name n;
	int rc = 0;
	if (list_scan(&l, q->newfd, e) != 0)
		return -1;
	for (size_t i = 0; i < l.n; i++)
		if (name_parse(l.v[i], &n) == 0 && name_expired(q, &n, now)) {
			if ((rc = bury_from(q, q->newfd, l.v[i], &n, "expired", NULL, e)) > 0)
				r->expired++;
			else if (rc < 0)
				repair_failed(r, errno);
		}
	list_clear(&l);
	return 0;
}

/* Files in dir whose mtime is older than age ms: removed, counted; those
 * that could not be (no permission) counted in r as failed. */
static long
sweep_old(int dirfd, int64_t now, int64_t age, struct spool_repair *r)
{
	struct name_list l = {0};
	long n = 0;
	if (list_scan(&l, dirfd, NULL) != 0)
		return 0;
	for (size_t i = 0; i < l.n; i++) {
		struct stat st;
		if (fstatat(dirfd, l.v[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
		    (int64_t)st.st_mtim.tv_sec * 1000 + age >= now)
			continue;
		if (unlinkat(dirfd, l.v[i], 0) == 0)
			n++;
		else if (errno != ENOENT)
			repair_failed(r, errno);
	}
	list_clear(&l);
	return n;
}

/* done/ and dead/ names carry the ack or burial time: no stat needed. */
static long
sweep_done(spool_queue *q, const char *sub, int64_t keep, int64_t now, struct spool_repair *r)
{
	struct name_list l = {0};
	struct spool_name n;
	long k = 0;
	int fd = openat(q->fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (list_scan(&l, fd, NULL) == 0)
		for (size_t i = 0; i < l.n; i++)
			if (name_parse(l.v[i], &n) == 0 && n.t + keep < now) {
				if (unlinkat(fd, l.v[i], 0) == 0)
					k++;
				else if (errno != ENOENT)
					repair_failed(r, errno);
			}
	list_clear(&l);
	close(fd);
	return k;
}

int
spool_repair(spool_queue *q, int flags, struct spool_repair *out, struct spool_err *e)
{
	struct spool_repair r = {0};
	int64_t now = spool_now();

	q->repaired = true;
	if (repair_leases(q, now, &r, e) != 0)
		return -1;
	/* publishes to topics that were interrupted, before their links in
	 * tmp/ could be taken for abandoned (at most once a second) */
	if (now - q->sp->topics_repaired >= 1000)
		spool_topics_repair(q->sp, NULL, NULL);
	/* tmp/: files of producers that died; their mtime says when they last wrote */
	r.tmp = sweep_old(q->tmpfd, now, q->cfg.tmp_grace, &r);
	if (flags & SPOOL_REPAIR_FULL) {
		reason_sweep(q, now); /* reasons of messages no longer waiting (6.13) */
		long k = repair_corrupt(q, NULL); /* what is not a file, before it is claimed */
		if (k < 0)
			repair_failed(&r, errno);
		r.corrupt = k > 0 ? k : 0;
		if (repair_expired(q, now, &r, e) != 0)
			return -1;
		if (q->cfg.keep_acked > 0)
			r.done = sweep_done(q, "done", q->cfg.keep_acked, now, &r);
		if (q->cfg.dead_retention > 0)
			r.dead = sweep_done(q, "dead", q->cfg.dead_retention, now, &r);
		int fd = openat(q->fd, "ids", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			/* under the lock: a sender may be refreshing a marker right now */
			int lockfd = queue_lock(q, NULL);
			if (lockfd >= 0) {
				r.ids = sweep_old(fd, now, q->cfg.dedup_window, &r);
				close(lockfd);
			} else {
				repair_failed(&r, errno);
			}
			close(fd);
		}
		/* ids received from relays (import.c), by the same window */
		if ((fd = openat(q->fd, "received", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
			r.ids += sweep_old(fd, now, q->cfg.dedup_window, &r);
			close(fd);
		}
	}
	/* keys whose head was lost between two steps of a crashed process */
	r.keys = key_repair(q, flags & SPOOL_REPAIR_FULL, &r.failed);
	q->next_lease = r.next_lease;
	if (out)
		*out = r;
	return 0;
}

int64_t
spool_queue_next_lease(const spool_queue *q)
{
	return q->next_lease;
}
