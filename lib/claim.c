/* SPDX-License-Identifier: MIT */
/*
 * claim.c: the state changes of a message after it was sent, each one rename
 * (spool-layout.md, "State changes"): claim new/ -> cur/, extend within cur/,
 * ack (unlink, or rename to done/), nack cur/ -> new/, bury into dead/, and
 * taking back leases that expired.  Whoever renames first wins; the loser sees
 * ENOENT, which is how "lease lost" is detected without any lock.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

#define TAKE_LEASE (60 * 1000) /* how long a burial may take before others may retry it */

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

static bool
expired(const spool_queue *q, const struct spool_name *n, int64_t now)
{
	return (n->exp && n->exp <= now) ||
	       (q->cfg.retention > 0 && n->t + q->cfg.retention <= now);
}

/* Rename fromfd/from into cur/ under name n; 1 done, 0 gone (someone else), -1. */
static int
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

/* Take a message for burial from new/ (expired) or cur/ (lease expired). */
static int
bury_from(spool_queue *q, int fromfd, const char *from, const struct spool_name *n,
          const char *reason, const char *status, struct spool_err *e)
{
	struct spool_name cn = *n;
	spool_msg *m = NULL;
	cn.t = spool_now() + TAKE_LEASE;
	int r = move_to_cur(q, fromfd, from, &cn, &m, e);
	if (r <= 0)
		return r;
	r = spool_bury(m, reason, status, e);
	spool_msg_free(m);
	return r == 0 ? 1 : -1;
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
		if (expired(q, &n, now)) {
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
		if (name_parse(l.v[i], &n) == 0 && expired(q, &n, now)) {
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

int
spool_replay(spool_queue *q, const struct spool_entry *en, spool_queue *to, int nosync,
             struct spool_err *e)
{
	struct spool_name n;
	char name[NAME_LEN];
	if (!to)
		to = q;
	if (name_parse(en->name, &n) != 0)
		return spool_fail(e, EX_DATAERR, "%s: not a message name", en->name);
	int fromfd = subdir_fd(q, en->state == SPOOL_DONE ? "done" : "dead", e);
	if (fromfd < 0)
		return -1;
	n.t = spool_now();
	n.attempts = 0;
	n.exp = 0; /* an operator replaying it wants it delivered */
	name_format(name, sizeof name, &n);
	char enc[NAME_MAX + 1];
	if (key_of_file(fromfd, en->name, enc, sizeof enc)) {
		/* behind what its key has queued since: at the end of keys/ENC/ */
		if (key_publish(to, fromfd, en->name, name, enc, nosync, e) < 0) {
			if (errno == ENOENT)
				return spool_fail(e, EX_NOTFOUND, "%s: gone (replayed by someone else?)", n.id);
			return -1;
		}
		reason_remove(q, n.id);
		if (!nosync && fsync_dir(to->newfd) != 0)
			return spool_fail_errno(e, errno, "fsync %s/new", to->path);
		return 0;
	}
	if (renameat2(fromfd, en->name, to->newfd, name, RENAME_NOREPLACE) != 0) {
		if (errno == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "%s: gone (replayed by someone else?)", n.id);
		return spool_fail_errno(e, errno, "rename %s to %s/new/%s", en->path, to->name, name);
	}
	spool_queue_arrived(to, name);
	reason_remove(q, n.id); /* a fresh start: no last failure */
	if (!nosync && fsync_dir(to->newfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/new", to->path);
	return 0;
}

spool_msg *
spool_msg_find(spool_queue *q, const char *arg, struct spool_err *e)
{
	struct spool_name n;
	const char *slash = strrchr(arg, '/');
	if (slash) { /* a path printed by mq-recv -c: its name is the claim */
		if (name_parse(slash + 1, &n) != 0)
			return spool_fail(e, EX_USAGE, "%s: not a message file name", arg), NULL;
		struct stat st;
		if (fstatat(q->curfd, slash + 1, &st, 0) != 0)
			return spool_fail(e, EX_NOTFOUND, "%s: not claimed (lease lost, or already finished)",
			                  n.id), NULL;
		return msg_new(q, &n, e);
	}
	if (strlen(arg) != ULID_LEN || !ulid_ok(arg))
		return spool_fail(e, EX_USAGE, "'%.60s': not a message id or path", arg), NULL;
	/* an id: whichever claim of it is in cur/ now */
	struct name_list l = {0};
	if (list_scan(&l, q->curfd, e) != 0)
		return NULL;
	spool_msg *m = NULL;
	for (size_t i = 0; i < l.n && !m; i++)
		if (name_parse(l.v[i], &n) == 0 && strcmp(n.id, arg) == 0)
			m = msg_new(q, &n, e);
	list_clear(&l);
	if (!m && e && e->code == 0)
		spool_fail(e, EX_NOTFOUND, "%s: not claimed in queue %s", arg, q->name);
	return m;
}

static int
lost(spool_msg *m, struct spool_err *e)
{
	return spool_fail(e, EX_NOTFOUND, "%s: lease lost: someone else may have it now", m->n.id);
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
		if (renameat(q->curfd, m->name, fd, to) != 0)
			return errno == ENOENT ? lost(m, e) :
			       spool_fail_errno(e, errno, "rename cur/%s to done/%s", m->name, to);
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
	if (renameat(q->curfd, m->name, q->newfd, to) != 0)
		return errno == ENOENT ? lost(m, e) :
		       spool_fail_errno(e, errno, "rename cur/%s to new/%s", m->name, to);
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
	if (renameat(m->q->curfd, m->name, m->q->newfd, to) != 0)
		return errno == ENOENT ? lost(m, e) :
		       spool_fail_errno(e, errno, "rename cur/%s to new/%s", m->name, to);
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
	if (renameat(m->q->curfd, m->name, m->q->curfd, to) != 0)
		return errno == ENOENT ? lost(m, e) :
		       spool_fail_errno(e, errno, "rename cur/%s to cur/%s", m->name, to);
	if (msg_renamed(m, &nn) != 0)
		return spool_fail_errno(e, ENOMEM, "extend");
	holder_note(m);
	return 0;
}

/* Copy all of src into dst from offset 0. */
static int
copy_fd(int src, int dst)
{
	off_t off = 0;
	for (;;) {
		ssize_t r = copy_file_range(src, &off, dst, NULL, 1 << 30, 0);
		if (r == 0)
			return 0;
		if (r > 0 || errno == EINTR) /* mq-recv's signal handlers do not restart */
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -1;
		char buf[65536];
		while ((r = pread(src, buf, sizeof buf, off)) > 0 || (r < 0 && errno == EINTR)) {
			if (r < 0)
				continue;
			if (write_all(dst, buf, (size_t)r) != 0)
				return -1;
			off += r;
		}
		return r < 0 ? -1 : 0;
	}
}

/* A reason as one header value: control characters become spaces. */
static void
oneline(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
	dst[i] = '\0';
}

/*
 * The dead letter is a new file: the reasons, then the message as it was.
 * Written in tmp/, synced, renamed into dead/, and only then is the claim in
 * cur/ removed, so a crash leaves the message in cur/ (retried) or in both
 * (a duplicate dead letter), never nowhere.
 */
int
spool_bury(spool_msg *m, const char *reason, const char *status, struct spool_err *e)
{
	spool_queue *q = m->q;
	int64_t now = spool_now();
	char date[40], hdr[1400 + REASON_TAIL_OUT + 512], tmpname[NAME_LEN + 8], to[NAME_LEN];
	int deadfd, fd = -1;

	/* own it for the time the copy takes, so no reaper buries it twice */
	if (spool_extend(m, TAKE_LEASE, e) != 0)
		return -1;
	if ((deadfd = subdir_fd(q, "dead", e)) < 0)
		return -1;
	/* the copy is of the whole file: a header block that cannot be parsed
	 * (the very reason some messages end here) must not stop it */
	struct spool_err oe = {0};
	if (msg_open(m, &oe) != 0 && m->fd < 0) {
		/* not a file, or one we may not read: set aside as it is */
		int r = msg_set_aside(m, errno, e);
		if (r != 0)
			return r > 0 ? 0 : -1;
		if (e)
			*e = oe;
		return -1;
	}
	struct spool_name dn = m->n;
	dn.t = now;
	name_format(to, sizeof to, &dn);
	snprintf(tmpname, sizeof tmpname, "%s.dead", to);
	char why[901], st[201];
	oneline(why, sizeof why, reason);
	oneline(st, sizeof st, status);
	int n = snprintf(hdr, sizeof hdr, "Dead-Reason: %s\nDead-Date: %s\nDead-Attempts: %u\n", why,
	                 spool_fmt_time(now, date, sizeof date), m->n.attempts);
	if (*st)
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "Dead-Status: %s\n", st);
	/* the handler's last words, one header a line (6.13) */
	n += (int)reason_header_lines("Dead-Stderr", m->stderr_tail, hdr + n, sizeof hdr - (size_t)n);
	fd = spool_open_file(q->tmpfd, tmpname, O_WRONLY | O_CREAT | O_TRUNC, 0666, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "create %s/tmp/%s", q->path, tmpname);
	if (write_all(fd, hdr, (size_t)n) != 0 || copy_fd(m->fd, fd) != 0 || fdatasync(fd) != 0) {
		spool_fail_errno(e, errno, "write %s/tmp/%s", q->path, tmpname);
		goto fail;
	}
	close(fd);
	fd = -1;
	while (renameat2(q->tmpfd, tmpname, deadfd, to, RENAME_NOREPLACE) != 0) {
		if (errno != EEXIST) {
			spool_fail_errno(e, errno, "rename tmp/%s to dead/%s", tmpname, to);
			goto fail;
		}
		dn.t++; /* buried twice in one millisecond (replayed in between) */
		name_format(to, sizeof to, &dn);
	}
	if (fsync_dir(deadfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/dead", q->path);
	if (unlinkat(q->curfd, m->name, 0) != 0 && errno != ENOENT)
		return spool_fail_errno(e, errno, "unlink cur/%s", m->name);
	m->done = true;
	reason_remove(q, m->n.id); /* its last failure is in the dead letter now */
	key_advance(m);            /* dead, it holds its key no longer */
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(q->tmpfd, tmpname, 0);
	return -1;
}
