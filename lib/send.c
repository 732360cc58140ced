/* SPDX-License-Identifier: MIT */
/*
 * send.c: writing messages.  Each message is written once into tmp/ under its
 * final name and published with one rename into new/, after its data is on
 * disk, so new/ never holds a partial file.  A batch (mq-send -l, several
 * FILEs) shares one sync and one fsync of new/: group commit.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <dirent.h>

#include "spool_priv.h"

#define BUF_SIZE 65536
#define KEEP_FDS 4 /* up to this many messages per commit are fsynced one by one */

struct pending {
	char name[NAME_LEN];
	int fd;          /* kept open for fsync, or -1 */
	int64_t size;    /* whole file */
};

struct spool_batch {
	spool_queue *q;
	struct spool_send_opts o;
	char *uhdr;      /* the user's -H lines, rendered once */
	struct pending *v;
	size_t n, cap;   /* ended, not yet committed */
	size_t committed;  /* how many of v[] the last commit published */
	size_t gone;       /* of a failed commit: delivered before they could be taken back */
	spool_topic *topic; /* mq-send --topic: committed by topic.c */
	char kenc[NAME_MAX + 1]; /* --key, encoded, for a commit that is due now; "" else */
	bool use_syncfs;   /* more than KEEP_FDS pending: one syncfs instead */
	/* the message being written */
	bool open;
	int fd;
	struct spool_name cur;
	char curname[NAME_LEN];
	int64_t body;      /* body bytes so far */
	int64_t total;     /* file bytes so far */
	size_t buflen;
	char buf[BUF_SIZE];
};

/* Key is what --id wrote before it was Dedup-Key: files of older versions have it */
static const char *const reserved[] = {"Id", "Date", "Key", "Dedup-Key", "Order-Key", "Expires",
                                       "Hop", NULL};

/* A control character (DEL too) in s, TAB allowed where tab_ok. */
static bool
has_ctl(const char *s, bool tab_ok)
{
	for (; *s; s++)
		if (((unsigned char)*s < 0x20 && !(tab_ok && *s == '\t')) || *s == 0x7f)
			return true;
	return false;
}

static int
header_check(const char *h, struct spool_err *e)
{
	const char *colon = strchr(h, ':');
	size_t nlen = colon ? (size_t)(colon - h) : 0;
	if (!colon || nlen == 0 || nlen > 64 || !isalpha((unsigned char)h[0]))
		return spool_fail(e, EX_USAGE, "bad header '%.80s': want 'Name: value'", h);
	for (size_t i = 0; i < nlen; i++)
		if (!isalnum((unsigned char)h[i]) && h[i] != '-')
			return spool_fail(e, EX_USAGE, "bad header name '%.*s': want A-Z a-z 0-9 -",
			                  (int)nlen, h);
	for (int i = 0; reserved[i]; i++)
		if (strlen(reserved[i]) == nlen && strncasecmp(h, reserved[i], nlen) == 0)
			return spool_fail(e, EX_USAGE, "header %.*s is set by %s", (int)nlen, h,
			                  strncasecmp(h, "Hop", nlen) == 0 ? "the relays a message passes" :
			                  "mq-send itself");
	if (nlen >= 5 && strncasecmp(h, "Dead-", 5) == 0)
		return spool_fail(e, EX_USAGE, "header %.*s is reserved for dead letters", (int)nlen, h);
	const char *v = colon + 1;
	v += strspn(v, " \t"); /* written as "Name: value" */
	if (strlen(v) > 998)
		return spool_fail(e, EX_USAGE, "header %.*s: value over 998 bytes", (int)nlen, h);
	if (has_ctl(v, true))
		return spool_fail(e, EX_USAGE, "header %.*s: control character in value", (int)nlen, h);
	return 0;
}

int
spool_headers_check(const char *const *hdrs, struct spool_err *e)
{
	size_t len = 0;
	for (const char *const *h = hdrs; h && *h; h++) {
		if (header_check(*h, e) != 0)
			return -1;
		len += strlen(*h) + 2;
	}
	/* with ours and a dead letter's, the block must end where a reader looks */
	if (len > HEAD_LIMIT / 2)
		return spool_fail(e, EX_USAGE, "headers: %zu bytes in all, over %d", len, HEAD_LIMIT / 2);
	return 0;
}

spool_batch *
spool_batch_new(spool_queue *q, const struct spool_send_opts *o, struct spool_err *e)
{
	spool_batch *b = calloc(1, sizeof *b);
	if (!b)
		return spool_fail_errno(e, errno, "send"), NULL;
	b->q = q;
	b->fd = -1;
	if (o)
		b->o = *o;
	if (spool_headers_check(b->o.headers, e) != 0 ||
	    (b->o.key && spool_key_check(b->o.key, e) != 0) ||
	    (b->o.order_key && spool_order_key_check(b->o.order_key, e) != 0)) {
		free(b);
		return NULL;
	}
	size_t len = 1;
	for (const char *const *h = b->o.headers; h && *h; h++)
		len += strlen(*h) + 2;
	if (!(b->uhdr = malloc(len))) {
		free(b);
		return spool_fail_errno(e, errno, "send"), NULL;
	}
	char *p = b->uhdr;
	for (const char *const *h = b->o.headers; h && *h; h++) {
		/* normalise "Name:value" and "Name:  value" to "Name: value" */
		const char *colon = strchr(*h, ':'), *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		p += sprintf(p, "%.*s: %s\n", (int)(colon - *h), *h, v);
	}
	*p = '\0';
	b->o.headers = NULL; /* not owned: do not keep the caller's pointers */
	return b;
}

static int
flush(spool_batch *b, struct spool_err *e)
{
	if (b->buflen && write_all(b->fd, b->buf, b->buflen) != 0)
		return spool_fail_errno(e, errno, "write %s/tmp/%s", b->q->path, b->curname);
	b->buflen = 0;
	return 0;
}

static int
put(spool_batch *b, const void *p, size_t n, struct spool_err *e)
{
	b->total += (int64_t)n;
	if (b->buflen + n > BUF_SIZE && flush(b, e) != 0)
		return -1;
	if (n >= BUF_SIZE)
		return write_all(b->fd, p, n) == 0 ? 0 :
		       spool_fail_errno(e, errno, "write %s/tmp/%s", b->q->path, b->curname);
	memcpy(b->buf + b->buflen, p, n);
	b->buflen += n;
	return 0;
}

int
spool_batch_begin(spool_batch *b, struct spool_err *e)
{
	int64_t now = spool_now();
	char hdr[256], date[40];

	if (b->open)
		return spool_fail(e, EX_SOFTWARE, "send: message already open");
	ulid_new(b->cur.id);
	b->cur.t = b->o.due > now ? b->o.due : now;
	b->cur.attempts = 0;
	b->cur.exp = b->o.ttl > 0 ? name_time(now + b->o.ttl) : 0; /* Expires: as the name */
	name_format(b->curname, sizeof b->curname, &b->cur);
	b->fd = openat(b->q->tmpfd, b->curname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (b->fd < 0)
		return spool_fail_errno(e, errno, "create %s/tmp/%s", b->q->path, b->curname);
	b->open = true;
	b->body = b->total = 0;
	b->buflen = 0;
	int n = snprintf(hdr, sizeof hdr, "Id: %s\nDate: %s\n", b->cur.id,
	                 spool_fmt_time(ulid_time(b->cur.id), date, sizeof date));
	if (put(b, hdr, (size_t)n, e) != 0)
		return -1;
	/* two names an operator reading the file cannot take for each other */
	if (b->o.key && (put(b, "Dedup-Key: ", 11, e) != 0 ||
	                 put(b, b->o.key, strlen(b->o.key), e) != 0 || put(b, "\n", 1, e) != 0))
		return -1;
	if (b->o.order_key && (put(b, "Order-Key: ", 11, e) != 0 ||
	                       put(b, b->o.order_key, strlen(b->o.order_key), e) != 0 ||
	                       put(b, "\n", 1, e) != 0))
		return -1;
	if (b->cur.exp) {
		n = snprintf(hdr, sizeof hdr, "Expires: %s\n",
		             spool_fmt_time(b->cur.exp, date, sizeof date));
		if (put(b, hdr, (size_t)n, e) != 0)
			return -1;
	}
	return put(b, b->uhdr, strlen(b->uhdr), e) != 0 ? -1 : put(b, "\n", 1, e);
}

int
spool_batch_write(spool_batch *b, const void *p, size_t n, struct spool_err *e)
{
	if (!b->open)
		return spool_fail(e, EX_SOFTWARE, "send: no message open");
	b->body += (int64_t)n;
	if (b->body > b->q->cfg.max_size)
		return spool_fail(e, EX_DATAERR, "message over the size limit of queue %s (max-size %lld bytes)",
		                  b->q->name, (long long)b->q->cfg.max_size);
	return put(b, p, n, e);
}

int
spool_batch_write_fd(spool_batch *b, int fd, struct spool_err *e)
{
	char buf[BUF_SIZE];
	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r == 0)
			return 0;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return spool_fail(e, EX_NOINPUT, "read: %s", spool_strerror(errno));
		}
		if (spool_batch_write(b, buf, (size_t)r, e) != 0)
			return -1;
	}
}

static void
drop_current(spool_batch *b)
{
	if (!b->open)
		return;
	close(b->fd);
	unlinkat(b->q->tmpfd, b->curname, 0);
	b->fd = -1;
	b->open = false;
}

int
spool_batch_end(spool_batch *b, struct spool_err *e)
{
	if (!b->open)
		return spool_fail(e, EX_SOFTWARE, "send: no message open");
	if (flush(b, e) != 0) {
		drop_current(b);
		return -1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 16;
		struct pending *v = realloc(b->v, cap * sizeof *v);
		if (!v) {
			drop_current(b);
			return spool_fail_errno(e, ENOMEM, "send");
		}
		b->v = v, b->cap = cap;
	}
	struct pending *p = &b->v[b->n++];
	strcpy(p->name, b->curname);
	p->size = b->total;
	p->fd = b->fd;
	/* Few messages: fsync each (cheap, touches nothing else).  Many: one
	 * syncfs at commit, so the fds need not stay open. */
	if (b->n > KEEP_FDS && !b->use_syncfs) {
		b->use_syncfs = true;
		for (size_t i = 0; i < b->n; i++)
			if (b->v[i].fd >= 0)
				close(b->v[i].fd), b->v[i].fd = -1;
	}
	if (b->use_syncfs && p->fd >= 0)
		close(p->fd), p->fd = -1;
	b->fd = -1;
	b->open = false;
	return 0;
}

size_t
spool_batch_pending(const spool_batch *b)
{
	return b->n;
}

static void
discard(spool_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		if (b->v[i].fd >= 0)
			close(b->v[i].fd);
		unlinkat(b->q->tmpfd, b->v[i].name, 0);
	}
	b->n = 0;
	b->use_syncfs = false;
}

/* Ready messages in new/, for max-length (only read when it is set). */
int64_t
queue_ready(spool_queue *q, struct spool_err *e)
{
	struct name_list l = {0};
	if (list_scan(&l, q->newfd, e) != 0)
		return -1;
	int64_t now = spool_now(), n = 0;
	struct spool_name nm;
	for (size_t i = 0; i < l.n; i++)
		if (name_parse(l.v[i], &nm) == 0 && nm.t <= now)
			n++;
	list_clear(&l);
	return n;
}

int
spool_queue_admit(spool_queue *q, int64_t adding, struct spool_err *e)
{
	const struct spool_config *c = &q->cfg;
	if (c->max_length > 0) {
		int64_t n = queue_ready(q, e);
		if (n < 0)
			return -1;
		if (n + adding > c->max_length || n >= c->max_length)
			return spool_fail(e, EX_TEMPFAIL, "queue %s is full (%lld ready, max-length %lld)",
			                  q->name, (long long)n, (long long)c->max_length);
	}
	if (c->min_free > 0) {
		struct statvfs vfs;
		if (fstatvfs(q->newfd, &vfs) != 0)
			return spool_fail_errno(e, errno, "statvfs %s", q->path);
		int64_t free_b = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
		if (free_b < c->min_free)
			return spool_fail(e, EX_TEMPFAIL,
			                  "disk under its reserve for queue %s (%lld bytes free, min-free %lld)",
			                  q->name, (long long)free_b, (long long)c->min_free);
	}
	return 0;
}

static int
admit(spool_batch *b, struct spool_err *e)
{
	/* delayed messages are not ready: they do not count now, but a full
	 * queue refuses them too (a producer is told to back off) */
	return spool_queue_admit(b->q, b->o.due > spool_now() ? 0 : (int64_t)b->n, e);
}

#define ROOM_RECHECK 2000 /* ms: counted again this often while waiting for room */

int
spool_batch_wait_room(spool_batch *b, struct spool_err *e)
{
	spool_queue *q = b->q;
	int fd = -1, rc = 0;
	if (q->cfg.max_length > 0 && b->o.due <= spool_now() && (int64_t)b->n > q->cfg.max_length)
		return spool_fail(e, EX_TEMPFAIL, "%zu messages can never fit in queue %s (max-length %lld)",
		                  b->n, q->name, (long long)q->cfg.max_length);
	while (admit(b, e) != 0) {
		if (e && e->code != EX_TEMPFAIL) {
			rc = -1;
			break;
		}
		/* watch, then count again: a removal in between is not missed */
		if (fd < 0) {
			if ((fd = room_watch(q, e)) < 0)
				return -1;
			continue;
		}
		/* a waiting producer is alive: the sweep of tmp/ goes by mtime */
		for (size_t i = 0; i < b->n; i++)
			utimensat(q->tmpfd, b->v[i].name, NULL, 0);
		room_wait(fd, ROOM_RECHECK); /* min-free has no event: the timer */
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static int
publish_one(spool_batch *b, const char *name, struct spool_err *e)
{
	spool_queue *q = b->q;
	if (b->kenc[0]) /* in line behind its key (16.2); a delayed one joins it when due */
		return key_publish(q, q->tmpfd, name, name, b->kenc, b->o.nosync, e) < 0 ? -1 : 0;
	if (renameat2(q->tmpfd, name, q->newfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return spool_fail_errno(e, errno, "rename tmp/%s to new/%s", name, name);
	/* a filesystem without RENAME_NOREPLACE: link() refuses to replace too */
	if (linkat(q->tmpfd, name, q->newfd, name, 0) != 0)
		return spool_fail_errno(e, errno, "link tmp/%s to new/%s", name, name);
	unlinkat(q->tmpfd, name, 0); /* a leftover is swept as stale, never delivered */
	return 0;
}

/*
 * The dedup marker ids/KEY (percent-encoded) holds the id first sent with
 * KEY; its mtime is when.  Checked and written under flock(QUEUE/.lock), the
 * one lock of the spool, so that concurrent producers of one key publish once.
 */
/* 0, or -1 when the encoded key would not fit in a file name. */
int
encode_key(const char *key, char *out, size_t len)
{
	size_t o = 0;
	for (const unsigned char *k = (const unsigned char *)key; *k; k++) {
		if (o + 4 >= len)
			return -1;
		if (isalnum(*k) || ((*k == '.' || *k == '_' || *k == '-') && k != (const unsigned char *)key))
			out[o++] = (char)*k;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", *k);
	}
	out[o] = '\0';
	return 0;
}

static char dup_id[ULID_LEN + 1];

int
spool_key_check(const char *key, struct spool_err *e)
{
	char enc[NAME_MAX + 1];
	if (!*key || strlen(key) > 200)
		return spool_fail(e, EX_USAGE, "--id: key must be 1 to 200 bytes");
	if (has_ctl(key, false)) /* it is written as the Key: header */
		return spool_fail(e, EX_USAGE, "--id: control character in key");
	if (encode_key(key, enc, sizeof enc) != 0)
		return spool_fail(e, EX_USAGE, "--id: key too long once encoded for a file name");
	return 0;
}

/* 1 seen (the first id in dup_id), 0 not, -1 when the marker cannot be
 * read: then nobody can tell, and sending would be a silent duplicate. */
int
dedup_seen(spool_queue *q, int idsfd, const char *enc, struct spool_err *e)
{
	struct stat st;
	int fd = spool_open_file(idsfd, enc, O_RDONLY, 0, &st);
	if (fd < 0)
		return errno == ENOENT ? 0 : spool_fail_errno(e, errno, "open %s/ids/%s", q->path, enc);
	int seen = 0;
	int64_t when = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	if (when + q->cfg.dedup_window > spool_now()) {
		char buf[ULID_LEN + 2];
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0) {
			seen = spool_fail_errno(e, errno, "read %s/ids/%s", q->path, enc);
		} else if (r == ULID_LEN || (r == ULID_LEN + 1 && buf[ULID_LEN] == '\n')) {
			/* a marker names a message or it is none: an empty or torn
			 * one (left by an older mq-send on a full disk) is absent */
			buf[ULID_LEN] = '\0';
			if (ulid_ok(buf)) {
				memcpy(dup_id, buf, sizeof dup_id);
				seen = 1;
			}
		}
	}
	close(fd);
	return seen;
}

/* The marker is written whole before the message is published, as
 * tmp/NAME.key (swept like any tmp/ file if we die), and renamed into ids/
 * after it: ids/ never holds a partial marker. */
static int
dedup_prepare(spool_batch *b, const char *keytmp, struct spool_err *e)
{
	spool_queue *q = b->q;
	int fd = openat(q->tmpfd, keytmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return spool_fail_errno(e, errno, "create %s/tmp/%s", q->path, keytmp);
	int rc = write_all(fd, b->cur.id, ULID_LEN);
	if (rc == 0 && !b->o.nosync)
		rc = fsync(fd); /* its mtime too: the time of the send */
	int err = errno;
	if (close(fd) != 0 && rc == 0)
		rc = -1, err = errno;
	if (rc != 0) {
		unlinkat(q->tmpfd, keytmp, 0);
		return spool_fail_errno(e, err, "write %s/tmp/%s", q->path, keytmp);
	}
	return 0;
}

/* Rename the marker into place (over an expired or unreadable one) and make
 * that durable.  *placed: ids/ENC is ours now, whatever the result. */
static int
dedup_place(spool_batch *b, int idsfd, const char *keytmp, const char *enc, bool *placed,
            struct spool_err *e)
{
	spool_queue *q = b->q;
	*placed = false;
	if (renameat(q->tmpfd, keytmp, idsfd, enc) != 0)
		return spool_fail_errno(e, errno, "rename tmp/%s to ids/%s", keytmp, enc);
	*placed = true;
	if (!b->o.nosync && fsync_dir(idsfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/ids", q->path);
	return 0;
}

/* Make the ended messages durable where they were written (6.2, step 3). */
int
batch_sync(spool_batch *b, struct spool_err *e)
{
	spool_queue *q = b->q;
	if (b->o.nosync)
		return 0;
	if (b->use_syncfs)
		return syncfs(q->tmpfd) == 0 ? 0 : spool_fail_errno(e, errno, "sync %s", q->path);
	for (size_t i = 0; i < b->n; i++)
		if (fdatasync(b->v[i].fd) != 0)
			return spool_fail_errno(e, errno, "fsync %s/tmp/%s", q->path, b->v[i].name);
	return 0;
}

long
spool_batch_commit(spool_batch *b, const char **dup_of, struct spool_err *e)
{
	spool_queue *q = b->q;
	int lockfd = -1, idsfd = -1;
	char enc[NAME_MAX + 1], keytmp[NAME_LEN + 8] = "";
	long rc = -1;
	size_t done = 0;

	b->committed = 0;
	b->gone = 0;
	if (dup_of)
		*dup_of = NULL;
	if (b->n == 0)
		return 0;
	b->kenc[0] = '\0';
	if (b->o.order_key && b->o.due <= spool_now() &&
	    encode_key(b->o.order_key, b->kenc, sizeof b->kenc) != 0) {
		spool_fail(e, EX_USAGE, "--key: key too long once encoded for a file name");
		return -1;
	}
	if (b->topic)
		return topic_commit(b, dup_of, e);
	/* The one lock: producers of a key, or of a queue with a max-length,
	 * check and publish one at a time so that neither limit can be raced. */
	if ((b->o.key || q->cfg.max_length > 0) && (lockfd = queue_lock(q, e)) < 0)
		goto out;
	if (admit(b, e) != 0) {
		/* nothing was done: the batch stays, to be committed once there
		 * is room (spool_batch_wait_room) or freed */
		if (lockfd >= 0)
			close(lockfd);
		return -1;
	}
	if (b->o.key) {
		if (encode_key(b->o.key, enc, sizeof enc) != 0) {
			spool_fail(e, EX_USAGE, "--id: key too long once encoded for a file name");
			goto out;
		}
		if (mkdirat(q->fd, "ids", 0777) == 0 ? fsync_dir(q->fd) != 0 : errno != EEXIST) {
			spool_fail_errno(e, errno, "create %s/ids", q->path);
			goto out;
		}
		if ((idsfd = openat(q->fd, "ids", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			spool_fail_errno(e, errno, "open %s/ids", q->path);
			goto out;
		}
		int seen = dedup_seen(q, idsfd, enc, e);
		if (seen < 0)
			goto out;
		if (seen) {
			if (dup_of)
				*dup_of = dup_id;
			rc = 0;
			goto out;
		}
		/* --id names one message: the marker is for b->v[0] */
		snprintf(keytmp, sizeof keytmp, "%s.key", b->v[0].name);
		if (dedup_prepare(b, keytmp, e) != 0) {
			keytmp[0] = '\0';
			goto out;
		}
	}
	if (batch_sync(b, e) != 0)
		goto out;
	for (; done < b->n; done++)
		if (publish_one(b, b->v[done].name, e) != 0)
			goto out;
	if (!b->o.nosync && fsync_dir(q->newfd) != 0) {
		spool_fail_errno(e, errno, "fsync %s/new", q->path);
		goto out;
	}
	if (b->o.key) {
		bool placed;
		if (dedup_place(b, idsfd, keytmp, enc, &placed, e) != 0) {
			/* Message and marker, or neither: take the message back
			 * out of new/.  If a consumer has it already, it was sent
			 * and stands, without its marker (or with one that may not
			 * survive a power loss): say so, and report it sent. */
			if (renameat(q->newfd, b->v[0].name, q->tmpfd, b->v[0].name) == 0) {
				if (placed)
					unlinkat(idsfd, enc, 0);
				done = 0; /* taken back already */
				goto out;
			}
			if (spool_warn_hook) {
				char w[sizeof e->msg + 160];
				snprintf(w, sizeof w, "%.26s was sent (a consumer has it already), but its "
				         "dedup marker may be missing: %s", b->cur.id, e ? e->msg : "");
				spool_warn_hook(w);
			}
			if (e)
				*e = (struct spool_err){0};
		}
		keytmp[0] = '\0';
	}
	rc = (long)b->n;
out:
	if (keytmp[0])
		unlinkat(q->tmpfd, keytmp, 0); /* the marker of a message not sent */
	if (rc < 0 && done < b->n) {
		/* all or none: take back what was already published */
		size_t gone = 0;
		for (size_t i = 0; i < done; i++) {
			char kp[NAME_MAX + NAME_LEN + 2];
			snprintf(kp, sizeof kp, "%s/%s", b->kenc, b->v[i].name);
			if (b->kenc[0] ? (unlinkat(q->newfd, b->v[i].name, 0) != 0 && errno != ENOENT) ||
			                 renameat(key_dirfd(q), kp, q->tmpfd, b->v[i].name) != 0 :
			                 renameat(q->newfd, b->v[i].name, q->tmpfd, b->v[i].name) != 0)
				gone++; /* a consumer was faster: it is delivered */
		}
		b->gone = gone;
		if (gone && e) {
			size_t n = strlen(e->msg);
			snprintf(e->msg + n, sizeof e->msg - n,
			         " (%zu of the %zu messages were already delivered)", gone, b->n);
		}
		discard(b);
	} else {
		for (size_t i = 0; i < b->n; i++)
			if (b->v[i].fd >= 0)
				close(b->v[i].fd), b->v[i].fd = -1;
		if (rc == 0) /* a duplicate: drop it */
			discard(b);
		b->committed = rc > 0 ? b->n : 0;
		b->n = 0;
		b->use_syncfs = false;
	}
	if (lockfd >= 0)
		close(lockfd);
	if (idsfd >= 0)
		close(idsfd);
	return rc;
}

const char *
spool_batch_id(const spool_batch *b, size_t i)
{
	if (i >= b->committed)
		return NULL;
	/* T.ID.A: the id starts after the time and its dot */
	static char id[ULID_LEN + 1];
	memcpy(id, b->v[i].name + TIME_DIGITS + 1, ULID_LEN);
	id[ULID_LEN] = '\0';
	return id;
}

size_t
spool_batch_gone(const spool_batch *b)
{
	return b->gone;
}

void
spool_batch_drop(spool_batch *b)
{
	drop_current(b);
	discard(b);
}

#define DISK_SLACK (64 << 10) /* bytes beyond what is to be written: names, directory blocks */

int
spool_batch_wait_disk(spool_batch *b, size_t bytes, size_t files, struct spool_err *e)
{
	spool_queue *q = b->q;
	/* a file costs a block or so besides its bytes */
	int64_t need = (int64_t)bytes + (int64_t)files * 4096 + DISK_SLACK;
	if (need < q->cfg.min_free)
		need = q->cfg.min_free;
	for (int looks = 0;; looks++) {
		struct statvfs vfs;
		if (fstatvfs(q->newfd, &vfs) != 0)
			return spool_fail_errno(e, errno, "statvfs %s", q->path);
		if ((int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize >= need &&
		    (vfs.f_files == 0 || vfs.f_favail > files + 16))
			return looks > 0;
		room_wait(-1, ROOM_RECHECK);
	}
}

void
spool_batch_free(spool_batch *b)
{
	if (!b)
		return;
	drop_current(b);
	discard(b);
	free(b->v);
	free(b->uhdr);
	free(b);
}

/* topic.c's view of a batch whose tmp/ is a topic's staging directory */
const char *
dedup_first(void)
{
	return dup_id;
}

void
batch_set_topic(spool_batch *b, spool_topic *t)
{
	b->topic = t;
}

spool_topic *
batch_topic(const spool_batch *b)
{
	return b->topic;
}

size_t
batch_count(const spool_batch *b)
{
	return b->n;
}

const char *
batch_name(const spool_batch *b, size_t i)
{
	return b->v[i].name;
}

const struct spool_send_opts *
batch_opts(const spool_batch *b)
{
	return &b->o;
}

const char *
batch_key(const spool_batch *b)
{
	return b->kenc;
}

/* End a commit: committed messages are forgotten (they left the staging
 * directory), the others unlinked. */
void
batch_finish(spool_batch *b, bool committed)
{
	if (!committed) {
		discard(b);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->v[i].fd >= 0)
			close(b->v[i].fd), b->v[i].fd = -1;
	b->committed = b->n;
	b->n = 0;
	b->use_syncfs = false;
}
