/* SPDX-License-Identifier: MIT */
/*
 * key.c: ordering by key (mq-send --key, spool-layout.md 16).  Every message
 * of a key K that is not finished has a name in QUEUE/keys/ENC/, in the
 * order K is to be served; the one being served, the key's *head*, is also
 * linked into new/ or cur/ (it is claimed, or waits there, due or for a
 * retry), and nothing else of K is.  So K is held exactly while its head is
 * linked, and the claim path needs no change at all: a head in new/ is a
 * message like any other.  What costs is giving K to the next message when
 * the head is done (acked, buried, expired): unlink its name in keys/ENC/,
 * then link the next one into new/ (a promote) or, for a consumer that goes
 * on claiming, straight into cur/ as its next claim (a run: one link instead
 * of the promote and the claim, up to KEY_RUN messages of a key in a row).
 * keys/ENC/ exists while K has a message; its mkdir is the atomic "was K
 * free?" of a send, and its rmdir (refused while a sender has just put a
 * message in) that of the last head's end.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

#define KEY_MAX 200             /* bytes of a key */
#define KEY_RUN 32              /* messages of one key a consumer takes in a row */
#define KEY_PEND 256            /* claims taken ahead by runs, at most */
#define KEY_TRIES 8             /* a key directory that vanishes under us, again and again */
#define KEY_GRACE (10 * 1000)   /* ms a key must be still before the repair touches it */
#define KEY_REPAIR_EVERY (60 * 1000) /* ms between light repairs of keys/ */
#define CACHE_SLOTS 1024

/* A listing of keys/ENC/, kept by a consumer between its claims. */
struct keycache {
	char enc[NAME_MAX + 1]; /* "" when the slot is free */
	char **v;               /* names, sorted */
	size_t n;
	unsigned run;           /* messages of this key taken in a row by this process */
};

static bool
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

int
spool_order_key_check(const char *key, struct spool_err *e)
{
	char enc[NAME_MAX + 1];
	if (!*key || strlen(key) > KEY_MAX)
		return spool_fail(e, EX_USAGE, "--key: key must be 1 to %d bytes", KEY_MAX);
	if (has_ctl(key))
		return spool_fail(e, EX_USAGE, "--key: control character in key");
	if (encode_key(key, enc, sizeof enc) != 0)
		return spool_fail(e, EX_USAGE, "--key: key too long once encoded for a file name");
	return 0;
}

/* keys/, opened (made when make) once per queue: the fd, or -1. */
static int
keys_fd(spool_queue *q, bool make, struct spool_err *e)
{
	if (q->keysfd >= 0)
		return q->keysfd;
	q->keysfd = openat(q->fd, "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->keysfd < 0 && errno == ENOENT && make) {
		if (mkdirat(q->fd, "keys", 0777) == 0)
			fsync_dir(q->fd);
		else if (errno != EEXIST)
			return spool_fail_errno(e, errno, "create %s/keys", q->path);
		q->keysfd = openat(q->fd, "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (q->keysfd < 0 && (make || errno != ENOENT))
		return spool_fail_errno(e, errno, "open %s/keys", q->path);
	return q->keysfd;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The message names of keys/ENC/, sorted, into *v (free with strv_free);
 * 0 (none, or no such directory), or -1. */
static int
list_key(int keysfd, const char *enc, char ***v, size_t *n)
{
	struct name_list l = {0};
	struct spool_name nm;
	*v = NULL;
	*n = 0;
	int fd = openat(keysfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	int rc = list_scan(&l, fd, NULL);
	close(fd);
	if (rc != 0)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (name_parse(l.v[i], &nm) == 0)
			l.v[k++] = l.v[i];
		else
			free(l.v[i]);
	}
	if (k > 1)
		qsort(l.v, k, sizeof *l.v, cmp_str);
	*v = l.v;
	*n = k;
	return 0;
}

static void
names_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static struct keycache *
slot_of(spool_queue *q, const char *enc)
{
	if (!q->kc && !(q->kc = calloc(CACHE_SLOTS, sizeof *q->kc)))
		return NULL;
	unsigned h = 5381;
	for (const char *p = enc; *p; p++)
		h = h * 33 + (unsigned char)*p;
	return &q->kc[h % CACHE_SLOTS];
}

/* The cached listing of keys/ENC/ (read again when fresh, or not cached). */
static struct keycache *
cache_get(spool_queue *q, const char *enc, bool fresh)
{
	struct keycache *c = slot_of(q, enc);
	if (!c)
		return NULL;
	if (!fresh && strcmp(c->enc, enc) == 0)
		return c;
	unsigned run = strcmp(c->enc, enc) == 0 ? c->run : 0;
	names_free(c->v, c->n);
	c->v = NULL, c->n = 0, c->enc[0] = '\0';
	if (list_key(q->keysfd, enc, &c->v, &c->n) != 0)
		return NULL;
	snprintf(c->enc, sizeof c->enc, "%s", enc);
	c->run = run;
	return c;
}

static void
cache_drop(struct keycache *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i], name) == 0) {
			free(c->v[i]);
			memmove(c->v + i, c->v + i + 1, (c->n - i - 1) * sizeof *c->v);
			c->n--;
			return;
		}
}

/* The name in c of message id, or NULL. */
static const char *
cache_find(struct keycache *c, const char *id)
{
	for (size_t i = 0; i < c->n; i++)
		if (strncmp(c->v[i] + TIME_DIGITS + 1, id, ULID_LEN) == 0)
			return c->v[i];
	return NULL;
}

void
key_close(spool_queue *q)
{
	struct spool_err e = {0};
	/* claims taken ahead that nobody asked for: back, uncounted (still heads) */
	for (size_t i = q->pendpos; i < q->npend; i++) {
		spool_release(q->pend[i], &e);
		spool_msg_free(q->pend[i]);
	}
	free(q->pend);
	q->pend = NULL;
	q->npend = q->pendpos = q->pendcap = 0;
	if (q->kc) {
		for (size_t i = 0; i < CACHE_SLOTS; i++)
			names_free(q->kc[i].v, q->kc[i].n);
		free(q->kc);
		q->kc = NULL;
	}
	if (q->keysfd >= 0)
		close(q->keysfd);
	q->keysfd = -1;
}

int
key_dirfd(spool_queue *q)
{
	return keys_fd(q, false, NULL);
}

void
spool_queue_runs(spool_queue *q, int on)
{
	q->runs = on != 0;
}

spool_msg *
key_pending(spool_queue *q)
{
	if (q->pendpos >= q->npend) {
		q->pendpos = q->npend = 0;
		return NULL;
	}
	return q->pend[q->pendpos++];
}

static int
fsync_key(int keysfd, const char *enc)
{
	int fd = openat(keysfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int
key_publish(spool_queue *q, int fromfd, const char *from, const char *name, const char *enc,
            bool nosync, struct spool_err *e)
{
	char path[NAME_MAX + NAME_LEN + 2];
	int kfd = keys_fd(q, true, e);
	if (kfd < 0)
		return -1;
	snprintf(path, sizeof path, "%s/%s", enc, name);
	for (int i = 0; i < KEY_TRIES; i++) {
		bool made = mkdirat(kfd, enc, 0777) == 0;
		if (!made && errno != EEXIST)
			return spool_fail_errno(e, errno, "create %s/keys/%s", q->path, enc);
		if (made && !nosync && fsync_dir(kfd) != 0)
			return spool_fail_errno(e, errno, "fsync %s/keys", q->path);
		int r = renameat2(fromfd, from, kfd, path, RENAME_NOREPLACE);
		if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
			r = linkat(fromfd, from, kfd, path, 0);
			if (r == 0)
				unlinkat(fromfd, from, 0);
		}
		if (r != 0) {
			struct stat st;
			/* the key's last message ended and took the directory away */
			if (errno == ENOENT && fstatat(fromfd, from, &st, AT_SYMLINK_NOFOLLOW) == 0)
				continue;
			return spool_fail_errno(e, errno, "rename %s to keys/%s", from, path);
		}
		if (!nosync && fsync_key(kfd, enc) != 0)
			return spool_fail_errno(e, errno, "fsync %s/keys/%s", q->path, enc);
		if (made) { /* the key was free: this is its head */
			if (linkat(kfd, path, q->newfd, name, 0) != 0 && errno != EEXIST)
				return spool_fail_errno(e, errno, "link keys/%s to new/%s", path, name);
			spool_queue_arrived(q, name);
			return 1;
		}
		return 0;
	}
	return spool_fail(e, EX_TEMPFAIL, "keys/%s: removed again and again while sending", enc);
}

/* The Order-Key header of the block at h (len bytes, the header block
 * whole), encoded, into out: 1, or 0 when there is none (or it is not a
 * key: then the message is unkeyed). */
int
key_of_head(const char *h, size_t len, char *out, size_t outlen)
{
	static const char name[] = "Order-Key:";
	const char *end = body_start(h, len);
	if (!end)
		return 0;
	for (const char *p = h; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		if ((size_t)(nl - p) > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
			const char *v = p + sizeof name - 1;
			while (v < nl && *v == ' ')
				v++;
			char key[KEY_MAX + 1];
			size_t k = (size_t)(nl - v);
			if (k == 0 || k > KEY_MAX)
				return 0;
			memcpy(key, v, k);
			key[k] = '\0';
			return !has_ctl(key) && encode_key(key, out, outlen) == 0;
		}
		p = nl + 1;
	}
	return 0;
}

int
key_of_file(int dirfd, const char *name, char *enc, size_t len)
{
	char buf[65536];
	int fd = spool_open_file(dirfd, name, O_RDONLY, 0, NULL);
	if (fd < 0)
		return 0;
	ssize_t r = pread(fd, buf, sizeof buf, 0);
	close(fd);
	return r > 0 && key_of_head(buf, (size_t)r, enc, len);
}

void
key_removed(spool_queue *q, const struct spool_name *n, const char *enc)
{
	spool_msg m = {.q = q, .n = *n, .kenc = (char *)enc};
	key_advance(&m);
}

/* Where m's key needs it: the name of its entry in keys/ENC/ (m->krec), from
 * the cached listing or a fresh one.  1 found, 0 none (not entered), -1. */
static int
key_record(spool_msg *m)
{
	spool_queue *q = m->q;
	if (m->krec[0])
		return 1;
	if (keys_fd(m->q, false, NULL) < 0)
		return 0;
	for (int fresh = 0; fresh < 2; fresh++) {
		struct keycache *c = cache_get(q, m->kenc, fresh);
		if (!c)
			return -1;
		const char *r = cache_find(c, m->n.id);
		if (r) {
			snprintf(m->krec, sizeof m->krec, "%s", r);
			return 1;
		}
	}
	return 0;
}

int
key_enter(spool_msg *m, struct spool_err *e)
{
	spool_queue *q = m->q;
	char path[NAME_MAX + NAME_LEN + 2], rec[NAME_LEN];
	int r = key_record(m);
	if (r != 0)
		return r > 0 ? 1 : spool_fail_errno(e, errno, "read %s/keys/%s", q->path, m->kenc);
	/* not one of the key's yet (sent delayed, received, injected): it joins
	 * the key now, at the end of the line, as if it were sent now */
	int kfd = keys_fd(q, true, e);
	if (kfd < 0)
		return -1;
	struct spool_name rn = m->n;
	rn.t = spool_now();
	rn.attempts = m->n.attempts ? m->n.attempts - 1 : 0; /* this claim was no delivery */
	name_format(rec, sizeof rec, &rn);
	snprintf(path, sizeof path, "%s/%s", m->kenc, rec);
	for (int i = 0; i < KEY_TRIES; i++) {
		bool made = mkdirat(kfd, m->kenc, 0777) == 0;
		if (!made && errno != EEXIST)
			return spool_fail_errno(e, errno, "create %s/keys/%s", q->path, m->kenc);
		if (made) { /* free: it is the head, and delivered now */
			if (linkat(q->curfd, m->name, kfd, path, 0) != 0)
				return spool_fail_errno(e, errno, "link cur/%s to keys/%s", m->name, path);
			snprintf(m->krec, sizeof m->krec, "%s", rec);
			return 1;
		}
		if (renameat(q->curfd, m->name, kfd, path) == 0) {
			m->done = true; /* waits its turn in keys/ENC/ */
			struct keycache *c = slot_of(q, m->kenc);
			if (c && strcmp(c->enc, m->kenc) == 0)
				c->enc[0] = '\0'; /* stale now */
			return 0;
		}
		if (errno != ENOENT)
			return spool_fail_errno(e, errno, "rename cur/%s to keys/%s", m->name, path);
		struct stat st;
		if (fstatat(q->curfd, m->name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			return spool_fail(e, EX_NOTFOUND, "%s: lease lost", m->n.id);
	}
	return spool_fail(e, EX_TEMPFAIL, "keys/%s: removed again and again", m->kenc);
}

/* Hand K on from m, which is done (its cur/ name is gone): its entry goes,
 * and the next message of K becomes the head.  Best effort: what is left
 * undone here (a crash, an error) the repair finds (key_repair). */
void
key_advance(spool_msg *m)
{
	spool_queue *q = m->q;
	char path[NAME_MAX + NAME_LEN + 2];
	if (!m->kenc || keys_fd(q, false, NULL) < 0 || key_record(m) <= 0)
		return;
	snprintf(path, sizeof path, "%s/%s", m->kenc, m->krec);
	if (unlinkat(q->keysfd, path, 0) != 0) {
		/* the name may be of a listing older than a replay: look again */
		struct keycache *c = errno == ENOENT ? cache_get(q, m->kenc, true) : NULL;
		const char *r = c ? cache_find(c, m->n.id) : NULL;
		if (!r)
			return; /* not ours to hand on (gone already): the repair looks */
		snprintf(m->krec, sizeof m->krec, "%s", r);
		snprintf(path, sizeof path, "%s/%s", m->kenc, m->krec);
		if (unlinkat(q->keysfd, path, 0) != 0)
			return;
	}
	struct keycache *c = cache_get(q, m->kenc, false);
	if (c)
		cache_drop(c, m->krec);
	m->krec[0] = '\0';
	for (int i = 0; i < KEY_TRIES; i++) {
		if (!c || c->n == 0) {
			if (!(c = cache_get(q, m->kenc, true)))
				return;
			if (c->n == 0) {
				if (unlinkat(q->keysfd, m->kenc, AT_REMOVEDIR) == 0 || errno == ENOENT) {
					c->enc[0] = '\0';
					return;
				}
				if (errno != ENOTEMPTY && errno != EEXIST)
					return;
				c = NULL; /* a sender was faster: its message is next */
				continue;
			}
		}
		const char *next = c->v[0];
		struct spool_name nn;
		if (name_parse(next, &nn) != 0) {
			cache_drop(c, next);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", m->kenc, next);
		if (q->pendpos) { /* the ones taken leave the front */
			/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sized right */
			memmove(q->pend, q->pend + q->pendpos, (q->npend - q->pendpos) * sizeof *q->pend);
			q->npend -= q->pendpos;
			q->pendpos = 0;
		}
		if (q->runs && c->run < KEY_RUN && q->npend < KEY_PEND) {
			/* this consumer goes on: the next one is its next claim */
			struct spool_name cn = nn;
			char to[NAME_LEN];
			cn.t = spool_now() + q->cfg.lease;
			cn.attempts = nn.attempts < ATTEMPTS_MAX ? nn.attempts + 1 : ATTEMPTS_MAX;
			name_format(to, sizeof to, &cn);
			if (linkat(q->keysfd, path, q->curfd, to, 0) != 0) {
				if (errno == ENOENT) {
					c = NULL;
					continue;
				}
				return;
			}
			spool_msg *x = msg_new(q, &cn, NULL);
			if (!x)
				return; /* claimed, and its lease brings it back */
			x->kenc = xstrdup(m->kenc);
			snprintf(x->krec, sizeof x->krec, "%s", next);
			x->kentered = true;
			if (q->npend == q->pendcap) {
				size_t cap = q->pendcap ? q->pendcap * 2 : 16;
				/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
				spool_msg **v = realloc(q->pend, cap * sizeof *v);
				if (!v) {
					spool_release(x, NULL);
					spool_msg_free(x);
					return;
				}
				q->pend = v, q->pendcap = cap;
			}
			q->pend[q->npend++] = x;
			holder_add(x);
			c->run++;
			return;
		}
		c->run = 0;
		if (linkat(q->keysfd, path, q->newfd, next, 0) == 0) {
			spool_queue_arrived(q, next);
			return;
		}
		if (errno != ENOENT)
			return; /* EEXIST: a repair promoted it already */
		c = NULL;
	}
}

/* ---- the repair of keys (spool-layout.md 16.6) ---- */

static bool
old(const struct timespec *t, int64_t now)
{
	return (int64_t)t->tv_sec * 1000 + t->tv_nsec / 1000000 + KEY_GRACE <= now;
}

static bool
same(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/* The ids linked into new/ and cur/ now, sorted (26 bytes each). */
static char *
linked_ids(spool_queue *q, size_t *n)
{
	struct name_list a = {0}, b = {0};
	struct spool_name nm;
	char *ids = NULL;
	*n = 0;
	if (list_scan(&a, q->newfd, NULL) != 0 || list_scan(&b, q->curfd, NULL) != 0)
		goto out;
	if (!(ids = malloc((a.n + b.n + 1) * ULID_LEN)))
		goto out;
	for (size_t i = 0; i < a.n + b.n; i++)
		if (name_parse(i < a.n ? a.v[i] : b.v[i - a.n], &nm) == 0)
			memcpy(ids + (*n)++ * ULID_LEN, nm.id, ULID_LEN);
	qsort(ids, *n, ULID_LEN, (int (*)(const void *, const void *))strncmp_ulid);
out:
	list_clear(&a);
	list_clear(&b);
	return ids;
}

int
strncmp_ulid(const void *a, const void *b)
{
	return memcmp(a, b, ULID_LEN);
}

static bool
linked(const char *ids, size_t n, const char *name)
{
	return bsearch(name + TIME_DIGITS + 1, ids, n, ULID_LEN, strncmp_ulid) != NULL;
}

/* One key: 1 mended, 0 nothing to do, -1. */
static int
repair_key(spool_queue *q, const char *enc, const char *ids, size_t nids, int64_t now)
{
	char **v;
	size_t n;
	struct stat d1, d2;
	int dfd = openat(q->keysfd, enc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &d1) != 0) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	int rc = 0;
	if (!old(&d1.st_mtim, now) || list_key(q->keysfd, enc, &v, &n) != 0) {
		close(dfd);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (linked(ids, nids, v[i]))
			goto out; /* it has a head */
	if (n == 0) { /* a key that ended without taking its directory */
		rc = unlinkat(q->keysfd, enc, AT_REMOVEDIR) == 0;
		goto out;
	}
	/* Nothing of it in new/ or cur/: but a head could have moved between
	 * the two listings.  Its inode's ctime says it did; one that stayed
	 * still over a fresh look is truly nowhere but here. */
	struct timespec *ct = calloc(n, sizeof *ct);
	if (!ct)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct stat st;
		if (fstatat(dfd, v[i], &st, AT_SYMLINK_NOFOLLOW) != 0 || !old(&st.st_ctim, now))
			goto skip;
		ct[i] = st.st_ctim;
	}
	size_t n2;
	char *ids2 = linked_ids(q, &n2);
	bool any = !ids2;
	for (size_t i = 0; i < n && !any; i++) {
		struct stat st;
		any = linked(ids2, n2, v[i]) || fstatat(dfd, v[i], &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		      !same(&st.st_ctim, &ct[i]);
	}
	free(ids2);
	if (!any && fstat(dfd, &d2) == 0 && same(&d1.st_mtim, &d2.st_mtim)) {
		if (linkat(dfd, v[0], q->newfd, v[0], 0) == 0) {
			spool_queue_arrived(q, v[0]);
			rc = 1;
		} else if (errno != EEXIST) {
			rc = -1;
		}
	}
skip:
	free(ct);
out:
	names_free(v, n);
	close(dfd);
	return rc;
}

long
key_repair(spool_queue *q, bool full, long *failed)
{
	struct name_list l = {0};
	int64_t now = spool_now();
	long mended = 0;
	if (keys_fd(q, false, NULL) < 0)
		return 0;
	struct stat st;
	if (!full && fstatat(q->keysfd, ".repaired", &st, 0) == 0 &&
	    (int64_t)st.st_mtim.tv_sec * 1000 + KEY_REPAIR_EVERY > now)
		return 0;
	/* one repairer at a time: two could promote the same head */
	int lfd = openat(q->keysfd, ".repaired", O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (lfd < 0)
		return 0;
	if (flock(lfd, LOCK_EX | LOCK_NB) != 0) {
		close(lfd);
		return 0;
	}
	futimens(lfd, NULL);
	size_t nids;
	char *ids = linked_ids(q, &nids);
	if (ids && list_scan(&l, q->keysfd, NULL) == 0)
		for (size_t i = 0; i < l.n; i++) {
			int r = repair_key(q, l.v[i], ids, nids, now);
			if (r > 0)
				mended++;
			else if (r < 0 && failed)
				(*failed)++;
		}
	free(ids);
	list_clear(&l);
	close(lfd);
	return mended;
}

/* ---- looking (mq-peek, mq-stat) ---- */

int
key_decode(const char *enc, char *out, size_t len)
{
	size_t o = 0;
	static const char hex[] = "0123456789ABCDEF";
	for (const char *p = enc; *p && o + 1 < len; p++) {
		const char *h = *p == '%' && p[1] ? strchr(hex, p[1]) : NULL;
		const char *l = h && p[2] ? strchr(hex, p[2]) : NULL;
		if (h && l) { /* %XX, as encode_key writes it */
			out[o++] = (char)((h - hex) << 4 | (l - hex));
			p += 2;
		} else {
			out[o++] = *p;
		}
	}
	out[o] = '\0';
	return 0;
}

int
key_each(spool_queue *q, key_fn *fn, void *arg)
{
	struct name_list l = {0};
	int kfd = q->keysfd >= 0 ? q->keysfd : openat(q->fd, "keys", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (kfd < 0)
		return 0;
	int rc = 0;
	if (list_scan(&l, kfd, NULL) == 0)
		for (size_t i = 0; i < l.n && rc == 0; i++) {
			char **v;
			size_t n;
			if (list_key(kfd, l.v[i], &v, &n) != 0)
				continue;
			rc = fn(arg, kfd, l.v[i], (const char *const *)v, n);
			names_free(v, n);
		}
	list_clear(&l);
	if (kfd != q->keysfd)
		close(kfd);
	return rc;
}
