/* SPDX-License-Identifier: MIT */
/*
 * peek.c: listing a queue's messages in every state without touching them,
 * for mq-peek, mq-stat and mq-replay.  Only here (and when asked) are files
 * stat()ed or opened: scheduling never needs that.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

static const char *const state_names[] = {"ready", "delayed", "claimed", "dead", "done", "waiting"};

const char *
spool_state_name(enum spool_state s)
{
	return state_names[s];
}

/* First block: body size, first body line, and of a dead letter its latest
 * Dead-Reason (a replayed message keeps its history, but is not dead).
 * -1 when the entry is not a regular file (not a message: left out). */
static int
peek_file(int dirfd, const char *name, struct spool_entry *en)
{
	char buf[8192];
	int fd = spool_open_file(dirfd, name, O_RDONLY, 0, NULL);
	if (fd < 0)
		return errno == SPOOL_ENOTREG ? -1 : 0;
	ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
	struct stat st;
	if (r > 0 && fstat(fd, &st) == 0) {
		buf[r] = '\0';
		const char *body = body_start(buf, (size_t)r);
		if (body) {
			en->body_size = st.st_size - (body - buf);
			size_t k = 0;
			for (const char *p = body; p < buf + r && *p != '\n' && k + 1 < sizeof en->line; p++)
				en->line[k++] = (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p;
			en->line[k] = '\0';
		}
		char enc[NAME_MAX + 1];
		if (!en->key[0] && key_of_head(buf, (size_t)r, enc, sizeof enc))
			key_decode(enc, en->key, sizeof en->key);
		if (en->state == SPOOL_DEAD && strncmp(buf, "Dead-Reason: ", 13) == 0) {
			size_t k = strcspn(buf + 13, "\n");
			snprintf(en->reason, sizeof en->reason, "%.*s", (int)k, buf + 13);
		}
	}
	close(fd);
	return 0;
}

/* The last failure (6.13) of a message waiting for a retry, as "STATUS: last
 * stderr line". */
static void
last_failure(spool_queue *q, struct spool_entry *en)
{
	struct spool_failure f;
	if (spool_entry_failure(q, en, &f) <= 0 || !*f.status)
		return;
	const char *last = strrchr(f.stderr_tail, '\n');
	last = last ? last + 1 : f.stderr_tail;
	char buf[sizeof f.status + sizeof f.stderr_tail];
	size_t n = (size_t)snprintf(buf, sizeof buf, "%s%s%s", f.status, *last ? ": " : "", last);
	if (n >= sizeof en->reason)
		n = sizeof en->reason - 1; /* a column, cut */
	memcpy(en->reason, buf, n);
	en->reason[n] = '\0';
}

static const char *const state_dirs[] = {"new", "new", "cur", "dead", "done"};

int
spool_entry_peek(spool_queue *q, struct spool_entry *en)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", state_dirs[en->state], en->name);
	en->body_size = -1;
	en->line[0] = en->key[0] = '\0';
	if (en->state != SPOOL_DEAD)
		en->reason[0] = '\0';
	if (peek_file(q->fd, path, en) < 0)
		return -1;
	if (en->state == SPOOL_READY || en->state == SPOOL_DELAYED)
		last_failure(q, en);
	return 0;
}

static int
find_id(const struct spool_entry *en, void *arg)
{
	struct spool_view *v = arg;
	if (strcmp(en->id, v->en.id) != 0)
		return 0;
	v->en = *en;
	snprintf(v->name, sizeof v->name, "%s", en->name);
	snprintf(v->path, sizeof v->path, "%s", en->path);
	v->en.name = v->name;
	v->en.path = v->path;
	return 1;
}

int
spool_view(spool_queue *q, const char *id, size_t max, struct spool_view *v, struct spool_err *e)
{
	memset(v, 0, sizeof *v);
	if (!spool_id_ok(id))
		return spool_fail(e, EX_NOTFOUND, "%s: no such message in queue %s", spool_printable(id),
		                  q->name);
	memcpy(v->en.id, id, sizeof v->en.id);
	int rc = spool_list(q, 0, SPOOL_LIST_PEEK, find_id, v, e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		return spool_fail(e, EX_NOTFOUND, "%s: no such message in queue %s", id, q->name);
	struct stat st;
	int fd = spool_open_file(AT_FDCWD, v->path, O_RDONLY, 0, &st);
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s", v->path);
	/* the header block is at most 256 KiB (import.c); the body is cut at max */
	size_t want = (size_t)(st.st_size < (off_t)(max + 262144) ? st.st_size : (off_t)(max + 262144));
	char *buf = malloc(want + 1);
	size_t got = 0;
	ssize_t k = 0;
	while (buf && got < want && (k = pread(fd, buf + got, want - got, (off_t)got)) > 0)
		got += (size_t)k;
	int err = !buf ? ENOMEM : k < 0 ? errno : 0;
	close(fd);
	if (err) {
		free(buf);
		return spool_fail_errno(e, err, "read %s", v->path);
	}
	buf[got] = '\0';
	const char *body = body_start(buf, got);
	size_t hl = body ? (size_t)(body - buf) : got;
	v->file = buf;
	v->head = buf;
	v->head_len = hl >= 2 ? hl - 1 : 0; /* without the empty line (a file with no headers: "") */
	if (hl == 1)
		v->head_len = 0;
	v->body = buf + hl;
	v->body_len = got - hl < max ? got - hl : max;
	v->body_size = st.st_size - (off_t)hl;
	v->complete = body != NULL;
	return 0;
}

void
spool_view_free(struct spool_view *v)
{
	free(v->file);
	v->file = NULL;
}

static int
list_dir(spool_queue *q, int dirfd, const char *sub, enum spool_state st0, unsigned states,
         int flags, spool_entry_fn *fn, void *arg, struct spool_err *e)
{
	struct name_list l = {0};
	struct spool_name n;
	struct spool_entry en;
	char path[4096];
	int64_t now = spool_now();
	int rc = 0;

	if (list_scan(&l, dirfd, e) != 0)
		return -1;
	if (l.n > 1)
		qsort(l.v, l.n, sizeof *l.v, strv_cmp);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		if (name_parse(l.v[i], &n) != 0)
			continue;
		memset(&en, 0, sizeof en);
		en.state = st0 == SPOOL_READY && n.t > now ? SPOOL_DELAYED : st0;
		if (!(states & 1u << en.state))
			continue;
		memcpy(en.id, n.id, sizeof en.id);
		en.attempts = n.attempts;
		en.t = n.t;
		en.created = ulid_time(n.id);
		en.expires = n.exp;
		en.size = en.body_size = -1;
		en.name = l.v[i];
		snprintf(path, sizeof path, "%s/%s/%s", q->path, sub, l.v[i]);
		en.path = path;
		if (flags & SPOOL_LIST_SIZE) {
			struct stat sb;
			if (fstatat(dirfd, l.v[i], &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
				continue; /* gone since the listing, or not a message */
			en.size = sb.st_size;
		}
		if ((flags & SPOOL_LIST_PEEK) && peek_file(dirfd, l.v[i], &en) < 0)
			continue;
		if ((flags & SPOOL_LIST_PEEK) && st0 == SPOOL_READY)
			last_failure(q, &en);
		rc = fn(&en, arg);
	}
	list_clear(&l);
	return rc;
}

/* Messages waiting behind the head of their key (keys/ENC/ names that are
 * linked nowhere else): SPOOL_WAITING, in key order. */
struct wait_ctx {
	spool_queue *q;
	char *ids;      /* linked into new/ or cur/, sorted */
	size_t nids;
	int flags;
	spool_entry_fn *fn;
	void *arg;
};

static int
wait_key(void *arg, int keysfd, const char *enc, const char *const *v, size_t n)
{
	struct wait_ctx *c = arg;
	struct spool_name nm;
	struct spool_entry en;
	char name[NAME_MAX + NAME_LEN + 2], path[4096];
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (name_parse(v[i], &nm) != 0 ||
		    (c->nids && bsearch(nm.id, c->ids, c->nids, ULID_LEN, strncmp_ulid)))
			continue; /* the head: listed where it is linked */
		memset(&en, 0, sizeof en);
		en.state = SPOOL_WAITING;
		memcpy(en.id, nm.id, sizeof en.id);
		en.attempts = nm.attempts;
		en.t = nm.t;
		en.created = ulid_time(nm.id);
		en.expires = nm.exp;
		en.size = en.body_size = -1;
		key_decode(enc, en.key, sizeof en.key);
		snprintf(name, sizeof name, "%s/%s", enc, v[i]);
		snprintf(path, sizeof path, "%s/keys/%s", c->q->path, name);
		en.name = name;
		en.path = path;
		if (c->flags & SPOOL_LIST_SIZE) {
			struct stat sb;
			if (fstatat(keysfd, name, &sb, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(sb.st_mode))
				continue;
			en.size = sb.st_size;
		}
		if ((c->flags & SPOOL_LIST_PEEK) && peek_file(keysfd, name, &en) < 0)
			continue;
		rc = c->fn(&en, c->arg);
	}
	return rc;
}

static int
list_waiting(spool_queue *q, int flags, spool_entry_fn *fn, void *arg)
{
	struct wait_ctx c = {.q = q, .flags = flags, .fn = fn, .arg = arg};
	struct name_list a = {0}, b = {0};
	struct spool_name nm;
	int rc = 0;
	if ((q->newfd >= 0 && list_scan(&a, q->newfd, NULL) != 0) ||
	    (q->curfd >= 0 && list_scan(&b, q->curfd, NULL) != 0))
		goto out;
	c.ids = malloc((a.n + b.n + 1) * ULID_LEN);
	if (!c.ids)
		goto out;
	for (size_t i = 0; i < a.n + b.n; i++)
		if (name_parse(i < a.n ? a.v[i] : b.v[i - a.n], &nm) == 0)
			memcpy(c.ids + c.nids++ * ULID_LEN, nm.id, ULID_LEN);
	qsort(c.ids, c.nids, ULID_LEN, strncmp_ulid);
	rc = key_each(q, wait_key, &c);
out:
	free(c.ids);
	list_clear(&a);
	list_clear(&b);
	return rc;
}

int
spool_list(spool_queue *q, unsigned states, int flags, spool_entry_fn *fn, void *arg,
           struct spool_err *e)
{
	if (!states)
		states = ~0u;
	int rc = 0;
	/* a queue opened only to look (SPOOL_LOOK) may lack new/ or cur/: empty */
	if ((states & (1u << SPOOL_READY | 1u << SPOOL_DELAYED)) && q->newfd >= 0)
		rc = list_dir(q, q->newfd, "new", SPOOL_READY, states, flags, fn, arg, e);
	if (!rc && (states & 1u << SPOOL_CLAIMED) && q->curfd >= 0)
		rc = list_dir(q, q->curfd, "cur", SPOOL_CLAIMED, states, flags, fn, arg, e);
	if (!rc && (states & 1u << SPOOL_WAITING) && q->fd >= 0)
		rc = list_waiting(q, flags, fn, arg);
	const char *subs[] = {"dead", "done"};
	enum spool_state sts[] = {SPOOL_DEAD, SPOOL_DONE};
	for (int i = 0; i < 2 && !rc; i++) {
		if (!(states & 1u << sts[i]))
			continue;
		int fd = openat(q->fd, subs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return spool_fail_errno(e, errno, "open %s/%s", q->path, subs[i]);
		}
		rc = list_dir(q, fd, subs[i], sts[i], states, flags, fn, arg, e);
		close(fd);
	}
	return rc;
}

