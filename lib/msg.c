/* SPDX-License-Identifier: MIT */
/*
 * msg.c: a claimed message: its name in cur/, reading its header block and
 * body.  The first block of the file is read once; a small message costs one
 * open, one read and one close however it is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"


spool_msg *
msg_new(spool_queue *q, const struct spool_name *n, struct spool_err *e)
{
	spool_msg *m = calloc(1, sizeof *m);
	if (!m)
		return spool_fail_errno(e, errno, "claim"), NULL;
	m->q = q;
	m->n = *n;
	m->fd = -1;
	name_format(m->name, sizeof m->name, n);
	if (asprintf(&m->path, "%s/cur/%s", q->path, m->name) < 0) {
		free(m);
		return spool_fail_errno(e, ENOMEM, "claim"), NULL;
	}
	return m;
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

/* The message was renamed within cur/: keep name and path in step. */
int
msg_renamed(spool_msg *m, const struct spool_name *n)
{
	char *path;
	char name[NAME_LEN];
	name_format(name, sizeof name, n);
	if (asprintf(&path, "%s/cur/%s", m->q->path, name) < 0)
		return -1;
	free(m->path);
	m->path = path;
	strcpy(m->name, name);
	m->n = *n;
	return 0;
}

/* Where the body starts in the first len bytes of a message file (after the
 * empty line that ends the header block), or NULL if the block does not end
 * there.  The one place that knows how a header block ends. */
const char *
body_start(const char *buf, size_t len)
{
	if (len && buf[0] == '\n')
		return buf + 1; /* no headers at all */
	const char *end = memmem(buf, len, "\n\n", 2);
	return end ? end + 2 : NULL;
}

/* The body has been read: the buffer goes back to the queue for the next one. */
void
msg_drop_head(spool_msg *m)
{
	if (m->head && m->headcap == HEAD_FIRST && !m->q->spare)
		m->q->spare = m->head;
	else
		free(m->head);
	m->head = NULL;
	m->headlen = 0;
}

void
spool_msg_free(spool_msg *m)
{
	if (!m)
		return;
	/* still claimed (a settle that failed, a claim left to its lease):
	 * its deadline is one a long-running consumer waits for, so that it
	 * is taken back then (spool_queue_next_lease), not at a rescan */
	if (!m->done && !m->lost && (!m->q->next_lease || m->n.t < m->q->next_lease))
		m->q->next_lease = m->n.t;
	holder_del(m);
	/* after an ack this may be the file's last descriptor, whose close
	 * frees its blocks (closer.c): a daemon's closer threads take it */
	spool_closer_put(&m->fd, 1);
	if (m->headers)
		for (char **h = m->headers; *h; h++)
			free(*h);
	free(m->headers);
	msg_drop_head(m);
	free(m->kenc);
	free(m->path);
	free(m);
}

/* spool_msg_free of each, their descriptors handed to the closer threads
 * in one go: one wake-up of them for a batch, not one a message (on tmpfs,
 * where a close is quick, waking a thread for each cost more than the
 * close). */
void
spool_msg_free_v(spool_msg **v, size_t n)
{
	int fds[64];
	while (n > 0) {
		size_t k = n < 64 ? n : 64;
		for (size_t i = 0; i < k; i++) {
			fds[i] = v[i]->fd;
			v[i]->fd = -1;
			spool_msg_free(v[i]);
		}
		spool_closer_put(fds, k);
		v += k, n -= k;
	}
}

const char *spool_msg_id(const spool_msg *m) { return m->n.id; }
const char *spool_msg_path(const spool_msg *m) { return m->path; }
const char *spool_msg_name(const spool_msg *m) { return m->name; }
unsigned spool_msg_attempt(const spool_msg *m) { return m->n.attempts; }
int64_t spool_msg_lease(const spool_msg *m) { return m->n.t; }

/* Open the file and read its first block; find where the body starts.  On
 * failure errno says why: ENOENT (the lease was lost), SPOOL_ENOTREG (not a
 * regular file), EACCES, EBADMSG (no end of the header block), or another
 * error of open or read. */
int
msg_open(spool_msg *m, struct spool_err *e)
{
	int err;
	if (m->head)
		return 0;
	if (m->fd < 0 && (m->fd = spool_open_file(m->q->curfd, m->name, O_RDONLY, 0, NULL)) < 0) {
		if (errno == ENOENT) {
			spool_fail(e, EX_NOTFOUND, "%s: lease lost: no longer claimed", m->n.id);
			errno = ENOENT;
			return -1;
		}
		return spool_fail_errno(e, errno, "open %s", m->path);
	}
	/* Most messages fit in the first block.  A file is never modified after
	 * its rename out of tmp/, so a short first read means the whole file. */
	size_t cap = HEAD_FIRST, got = 0;
	ssize_t r;
	/* a drain reads thousands of messages: reuse one buffer rather than
	 * have malloc give 16 KiB back to the kernel and fault it in again */
	m->head = m->q->spare ? m->q->spare : malloc(cap);
	m->q->spare = NULL;
	if (!m->head)
		return spool_fail_errno(e, ENOMEM, "read %s", m->path);
	m->headcap = cap;
	for (;;) {
		r = pread(m->fd, m->head + got, cap - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = errno;
			spool_fail_errno(e, err, "read %s", m->path);
			goto drop;
		}
		if (r == 0) {
			m->whole = true;
			break;
		}
		got += (size_t)r;
		if (got < cap) {
			m->whole = true;
			break;
		}
		if (body_start(m->head, got))
			break;
		if (cap >= HEAD_LIMIT)
			break;
		char *h = realloc(m->head, cap *= 4);
		if (!h) {
			err = ENOMEM;
			spool_fail_errno(e, err, "read %s", m->path);
			goto drop;
		}
		m->head = h;
		m->headcap = cap;
	}
	m->headlen = got;
	const char *body = body_start(m->head, got);
	if (!body) {
		err = EBADMSG;
		spool_fail(e, EX_DATAERR, "%s: no end of the header block within %d KiB", m->path,
		           HEAD_LIMIT / 1024);
		goto drop;
	}
	m->body_off = (off_t)(body - m->head);
	m->rpos = m->body_off;
	if (!m->kenc) { /* its ordering key, while the header block is at hand */
		char enc[NAME_MAX + 1];
		if (key_of_head(m->head, got, enc, sizeof enc))
			m->kenc = xstrdup(enc);
	}
	return 0;
drop:
	msg_drop_head(m); /* so that a second try fails the same way */
	errno = err;
	return -1;
}

ssize_t
spool_msg_read(spool_msg *m, void *buf, size_t n, struct spool_err *e)
{
	if (m->eof)
		return 0;
	if (msg_open(m, e) != 0)
		return -1;
	if (m->rpos < (off_t)m->headlen) {
		size_t k = m->headlen - (size_t)m->rpos;
		if (k > n)
			k = n;
		memcpy(buf, m->head + m->rpos, k);
		m->rpos += (off_t)k;
		return (ssize_t)k;
	}
	if (m->whole) {
		m->eof = true;
		if (!m->headers) /* nothing more needs the first block */
			msg_drop_head(m);
		return 0;
	}
	for (;;) {
		ssize_t r = pread(m->fd, buf, n, m->rpos);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return spool_fail_errno(e, errno, "read %s", m->path);
		m->rpos += r;
		m->eof = r == 0;
		return r;
	}
}

int
spool_msg_dup_fd(spool_msg *m, struct spool_err *e)
{
	if (msg_open(m, e) != 0)
		return -1;
	int fd = fcntl(m->fd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return spool_fail_errno(e, errno, "dup %s", m->path);
	return fd;
}

off_t
spool_msg_file(spool_msg *m, const char **whole, int *fd, struct spool_err *e)
{
	if (msg_open(m, e) != 0)
		return -1;
	*fd = m->fd;
	*whole = m->whole ? m->head : NULL;
	if (m->whole)
		return (off_t)m->headlen;
	struct stat st;
	if (fstat(m->fd, &st) != 0)
		return spool_fail_errno(e, errno, "stat %s", m->path);
	return st.st_size;
}

int
spool_msg_body_fd(spool_msg *m, struct spool_err *e)
{
	if (msg_open(m, e) != 0)
		return -1;
	int fd = spool_open_file(m->q->curfd, m->name, O_RDONLY, 0, NULL);
	if (fd < 0) {
		if (errno == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "%s: lease lost: no longer claimed", m->n.id);
		return spool_fail_errno(e, errno, "open %s", m->path);
	}
	/* a handler's stdin: the blocking mode it expects */
	if (fcntl(fd, F_SETFL, 0) < 0 || lseek(fd, m->body_off, SEEK_SET) < 0) {
		close(fd);
		return spool_fail_errno(e, errno, "seek %s", m->path);
	}
	return fd;
}

char *const *
spool_msg_headers(spool_msg *m, struct spool_err *e)
{
	if (m->headers)
		return m->headers;
	if (msg_open(m, e) != 0)
		return NULL;
	size_t n = 0;
	for (off_t i = 0; i < m->body_off; i++)
		n += m->head[i] == '\n';
	char **v = calloc(n + 1, sizeof *v);
	if (!v)
		return spool_fail_errno(e, errno, "read %s", m->path), NULL;
	size_t k = 0;
	for (const char *p = m->head, *end = m->head + m->body_off - 1; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl > p && !(v[k++] = strndup(p, (size_t)(nl - p))))
			break;
		p = nl + 1;
	}
	m->headers = v;
	return v;
}
