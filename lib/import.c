/* SPDX-License-Identifier: MIT */
/*
 * import.c: taking in a message file that another spool wrote, with its own
 * id (the relay's receiver, spool-layout.md "Received messages").  The file
 * arrives in pieces and is streamed into tmp/; its header block (bounded by
 * HEAD_LIMIT) is held until it ends, checked (the Id must be the one asked
 * for, every line "Name: value", no Hop of ours: that would be a loop), and
 * written with our own Hop line added last.  The body goes straight through.
 *
 * Commit is for many imports at once (group commit): one data sync, the
 * renames into new/, one fsync of each new/, then the markers received/ID
 * that make a retried transfer of the same id a duplicate (holding the
 * digest the caller computed).  A marker is written only once its message
 * is durable: a crash in between can cost a second copy on a retry, never
 * a message.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "spool_priv.h"

#define KEEP_FDS 4 /* up to this many imports per commit are fsynced one by one */

struct spool_import {
	spool_queue *q;
	struct spool_name n;   /* the name it gets in new/ (attempts 0) */
	char tmpname[NAME_LEN];
	int fd;                /* the tmp/ file, -1 once closed */
	char *hop;             /* our Hop name */
	char *from;            /* the sending relay's Hop name, "" when not told */
	bool from_seen;        /* the file's last Hop is already that name */
	char *head;            /* the header block until it ends, then NULL */
	size_t headlen, headcap;
	bool in_body;
	int64_t body;          /* body bytes so far */
	bool ended, tmp_left;  /* ended: whole and checked; tmp_left: tmp/ file exists */
	char digest[128];      /* stored in the marker */
	char hopline[600];     /* the Hop lines and the blank line, written after the head */
	char kenc[NAME_MAX + 1]; /* its Order-Key, encoded: it goes in line behind its key
	                          * (spool-layout.md 16), as mq-send --key puts it; "" none */
	uint64_t commits;      /* q->commits when it began: a later commit may hold its id */
	int result;            /* after commit: 1 stored, 0 already held, -1 failed */
	struct spool_err err;
};

/* A marker is received/ID (section 6.11 of spool-layout.md): a file whose
 * mtime is when ID was received, holding lines "ID DIGEST" for the ids of
 * one commit (each such id a hard link to the one file), a lone "DIGEST"
 * (one marker per file), or nothing (marked by a repair). */
static void
marker_digest(int fd, const struct stat *st, const char *id, char *digest, size_t len)
{
	size_t size = st->st_size > 0 && st->st_size < (1 << 24) ? (size_t)st->st_size : 0;
	char *buf = size ? malloc(size + 1) : NULL;
	if (!buf)
		return;
	ssize_t r = pread(fd, buf, size, 0);
	buf[r > 0 ? r : 0] = '\0';
	for (char *p = buf, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
		if ((nl = strchr(p, '\n')))
			*nl = '\0';
		char *sp = strchr(p, ' ');
		if (!sp || (sp - p == ULID_LEN && memcmp(p, id, ULID_LEN) == 0)) {
			snprintf(digest, len, "%s", sp ? sp + 1 : p);
			break;
		}
		if (!nl)
			break;
	}
	free(buf);
}

static int
held_at(spool_queue *q, const char *id, char *digest, size_t len)
{
	char path[16 + ULID_LEN];
	struct stat st;
	snprintf(path, sizeof path, "received/%s", id);
	int fd = spool_open_file(q->fd, path, O_RDONLY, 0, NULL);
	if (fd < 0)
		return 0;
	int held = 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		int64_t when = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
		held = when + q->cfg.dedup_window > spool_now();
		if (held && digest && len)
			marker_digest(fd, &st, id, digest, len);
	}
	close(fd);
	return held;
}

int
spool_received(spool_queue *q, const char *id, char *digest, size_t len)
{
	if (digest && len)
		digest[0] = '\0';
	if (!ulid_ok(id))
		return 0;
	/* a commit could not mark what it left in new/: mark it now, so that a
	 * retry of it is held already, not stored twice (once new/ is synced:
	 * a message whose rename is not durable is not yet "held") */
	if (q->marks_missing && fsync_dir(q->newfd) == 0) {
		struct spool_err re = {0};
		if (spool_received_repair(q, &re) >= 0)
			q->marks_missing = false;
	}
	return held_at(q, id, digest, len);
}

int
spool_id_ok(const char *id)
{
	return ulid_ok(id);
}

int64_t
spool_id_time(const char *id)
{
	return ulid_ok(id) ? ulid_time(id) : 0;
}

spool_import *
spool_import_new(spool_queue *q, const char *id, const char *hop, const char *from,
                 struct spool_err *e)
{
	if (!ulid_ok(id))
		return spool_fail(e, EX_USAGE, "bad message id '%s'", spool_printable(id)), NULL;
	spool_import *im = calloc(1, sizeof *im);
	if (!im || !(im->hop = strdup(hop ? hop : "")) || !(im->from = strdup(from ? from : ""))) {
		if (im)
			free(im->hop);
		free(im);
		return spool_fail_errno(e, ENOMEM, "receive"), NULL;
	}
	im->q = q;
	im->fd = -1;
	im->commits = q->commits;
	strcpy(im->n.id, id);
	im->n.t = spool_now();
	name_format(im->tmpname, sizeof im->tmpname, &im->n);
	im->fd = openat(q->tmpfd, im->tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (im->fd < 0) {
		spool_fail_errno(e, errno, "create %s/tmp/%s", q->path, im->tmpname);
		spool_import_free(im);
		return NULL;
	}
	im->tmp_left = true;
	return im;
}

/* The header block has ended at head[len] (after its blank line): check it,
 * then write it with our Hop line. */
static int
head_done(spool_import *im, size_t len, struct spool_err *e)
{
	bool have_id = false;
	size_t hoplen = strlen(im->hop), fromlen = strlen(im->from);
	const char *p = im->head, *end = im->head + len - 1; /* the blank line */
	if (len < 2)
		return spool_fail(e, EX_DATAERR, "message has no header block");
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(nl - p));
		if (!colon || colon == p || !isalpha((unsigned char)*p)) {
			char line[48];
			snprintf(line, sizeof line, "%.*s", (int)(nl - p < 40 ? nl - p : 40), p);
			return spool_fail(e, EX_DATAERR, "bad header line '%s': want 'Name: value'",
			                  spool_printable(line));
		}
		for (const char *c = p; c < colon; c++)
			if (!isalnum((unsigned char)*c) && *c != '-')
				return spool_fail(e, EX_DATAERR, "bad header name '%.*s'", (int)(colon - p), p);
		const char *v = colon + 1;
		while (v < nl && *v == ' ')
			v++;
		for (const char *c = v; c < nl; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return spool_fail(e, EX_DATAERR, "control character in header '%.*s'",
				                  (int)(colon - p), p);
		size_t nlen = (size_t)(colon - p), vlen = (size_t)(nl - v);
		if (nlen > 64 || vlen > 998) /* as mq-send writes them (spool-layout.md 5) */
			return spool_fail(e, EX_DATAERR, "header '%.*s': name over 64 or value over 998 bytes",
			                  (int)(nlen > 40 ? 40 : nlen), p);
		if (nlen == 2 && strncasecmp(p, "Id", 2) == 0) {
			if (vlen != ULID_LEN || memcmp(v, im->n.id, ULID_LEN) != 0)
				return spool_fail(e, EX_DATAERR, "header Id '%.*s' is not the id %s",
				                  (int)(vlen > 30 ? 30 : vlen), v, im->n.id);
			have_id = true;
		} else if (nlen == 3 && strncasecmp(p, "Hop", 3) == 0) {
			if (hoplen && vlen == hoplen && memcmp(v, im->hop, hoplen) == 0)
				return spool_fail(e, EX_PROTOCOL, "loop: %s has passed through %s before",
				                  im->n.id, im->hop);
			im->from_seen = fromlen && vlen == fromlen && memcmp(v, im->from, fromlen) == 0;
		} else if (nlen == 7 && strncasecmp(p, "Expires", 7) == 0) {
			char buf[64];
			snprintf(buf, sizeof buf, "%.*s", (int)(vlen < 63 ? vlen : 63), v);
			int64_t t = spool_parse_time(buf);
			if (t > 0)
				im->n.exp = t;
		}
		p = nl + 1;
	}
	if (!have_id)
		return spool_fail(e, EX_DATAERR, "message has no Id header");
	/* the sender first, when the file does not say it has been there (a
	 * message that starts its journey there): so that coming back to it is
	 * refused too, not stored once more */
	if (fromlen && hoplen && fromlen == hoplen && memcmp(im->from, im->hop, hoplen) == 0)
		return spool_fail(e, EX_PROTOCOL, "loop: %s comes from %s itself", im->n.id, im->hop);
	/* names are at most 200 bytes (conf.c, and what a receiver takes as Mq-Relay) */
	char *line = im->hopline;
	size_t size = sizeof im->hopline;
	int n = 0;
	if (fromlen && !im->from_seen)
		n += snprintf(line, size, "Hop: %.200s\n", im->from);
	if (hoplen)
		snprintf(line + n, size - n, "Hop: %.200s\n\n", im->hop);
	else
		snprintf(line + n, size - n, "\n");
	return 0;
}


static int
body_fits(spool_import *im, size_t n, struct spool_err *e)
{
	im->body += (int64_t)n;
	if (im->body > im->q->cfg.max_size)
		return spool_fail(e, EX_DATAERR,
		                  "message over the size limit of queue %s (max-size %lld bytes)",
		                  im->q->name, (long long)im->q->cfg.max_size);
	return 0;
}

int
spool_import_write(spool_import *im, const void *buf, size_t n, struct spool_err *e)
{
	const char *p = buf;
	if (im->fd < 0 || im->ended)
		return spool_fail(e, EX_SOFTWARE, "receive: not open");
	if (!im->in_body) {
		/* look for the blank line only in what is new (and the byte before) */
		size_t from = im->headlen ? im->headlen - 1 : 0;
		size_t take = n;
		if (im->headlen + take > HEAD_LIMIT)
			take = HEAD_LIMIT - im->headlen;
		if (im->headlen + take > im->headcap) {
			size_t cap = im->headcap ? im->headcap : 4096;
			while (cap < im->headlen + take)
				cap *= 2;
			char *h = realloc(im->head, cap);
			if (!h)
				return spool_fail_errno(e, ENOMEM, "receive");
			im->head = h, im->headcap = cap;
		}
		memcpy(im->head + im->headlen, p, take);
		im->headlen += take;
		const char *end = NULL;
		if (im->headlen && im->head[0] == '\n')
			end = im->head + 1;
		else if (im->headlen > from && (end = memmem(im->head + from, im->headlen - from,
		                                             "\n\n", 2)))
			end += 2;
		if (!end) {
			if (im->headlen >= HEAD_LIMIT)
				return spool_fail(e, EX_DATAERR, "header block does not end within %d bytes",
				                  HEAD_LIMIT);
			return 0;
		}
		size_t blen = (size_t)(end - im->head);
		if (head_done(im, blen, e) != 0)
			return -1;
		if (!key_of_head(im->head, blen, im->kenc, sizeof im->kenc))
			im->kenc[0] = '\0';
		/* what came after the blank line is body */
		size_t rest_in_head = im->headlen - blen;
		size_t used = take - rest_in_head; /* bytes of buf that were header */
		p += used;
		n -= used;
		if (body_fits(im, n, e) != 0)
			return -1;
		/* the header block without its blank line, our Hop lines, and
		 * the body that came with it: one write */
		struct iovec v[3] = {{im->head, blen - 1},
		                     {im->hopline, strlen(im->hopline)},
		                     {(void *)p, n}};
		int rc = writev_all(im->fd, v, n ? 3 : 2);
		free(im->head);
		im->head = NULL;
		im->in_body = true;
		if (rc != 0)
			return spool_fail_errno(e, errno, "write %s/tmp/%s", im->q->path, im->tmpname);
		return 0;
	}
	if (!n)
		return 0;
	if (body_fits(im, n, e) != 0)
		return -1;
	if (write_all(im->fd, p, n) != 0)
		return spool_fail_errno(e, errno, "write %s/tmp/%s", im->q->path, im->tmpname);
	return 0;
}

int
spool_import_end(spool_import *im, const char *digest, struct spool_err *e)
{
	if (im->fd < 0 || im->ended)
		return spool_fail(e, EX_SOFTWARE, "receive: not open");
	if (!im->in_body)
		return spool_fail(e, EX_DATAERR, "message ends inside its header block");
	snprintf(im->digest, sizeof im->digest, "%s", digest ? digest : "");
	im->ended = true;
	return 0;
}

const char *
spool_import_id(const spool_import *im)
{
	return im->n.id;
}

spool_queue *
spool_import_queue(const spool_import *im)
{
	return im->q;
}

int
spool_import_result(const spool_import *im, struct spool_err *e)
{
	if (im->result < 0 && e)
		*e = im->err;
	return im->result;
}

static void
failed(spool_import *im, int err, const char *what)
{
	im->result = -1;
	spool_fail_errno(&im->err, err, "%s %s/%s", what, im->q->path, im->tmpname);
}

/* Each distinct queue of v once: fn(q) for the first import of each. */
static bool
first_of_queue(spool_import *const *v, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (v[k]->q == v[i]->q && v[k]->result >= 0)
			return false;
	return true;
}

/* No import before v[i] of its queue has a result of at least min. */
static bool
first_stored(spool_import *const *v, size_t i, int min)
{
	for (size_t k = 0; k < i; k++)
		if (v[k]->q == v[i]->q && v[k]->result >= min)
			return false;
	return true;
}

static void
fail_queue(spool_import *const *v, size_t n, spool_queue *q, int err, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (v[i]->q == q && v[i]->result > 0)
			failed(v[i], err, what);
}

/* The fsync of new/ failed after the renames: take the commit's messages
 * of q out of new/ again, since the sender is told to send them again (a
 * second copy otherwise).  One a consumer took meanwhile is delivered; one
 * that cannot be taken out is marked later (marks_missing), so that the
 * retry finds it held. */
static void
withdraw_queue(spool_import *const *v, size_t n, spool_queue *q, int err)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i]->q != q || v[i]->result <= 0)
			continue;
		char to[NAME_LEN];
		name_format(to, sizeof to, &v[i]->n);
		if (unlinkat(q->newfd, to, 0) != 0 && errno != ENOENT)
			q->marks_missing = true;
		if (v[i]->kenc[0]) { /* and from its key's line (the repair hands the key on) */
			char kp[NAME_MAX + NAME_LEN + 2];
			snprintf(kp, sizeof kp, "%s/%s", v[i]->kenc, to);
			unlinkat(key_dirfd(q), kp, 0);
		}
		failed(v[i], err, "fsync new/ of");
	}
}

static void mark_received(spool_import *const *v, size_t n, size_t first);
static int marker_file(spool_queue *q, const char *path, const char *buf, size_t len);

void
spool_import_commit(spool_import *const *v, size_t n)
{
	spool_import_sync(v, n);
	spool_import_publish(v, n);
}

void
spool_import_sync(spool_import *const *v, size_t n)
{
	bool many = n > KEEP_FDS;
	/* 1: the data of every file */
	for (size_t i = 0; i < n; i++) {
		spool_import *im = v[i];
		im->result = im->ended ? 1 : -1;
		if (!im->ended)
			spool_fail(&im->err, EX_SOFTWARE, "receive: message not ended");
	}
	for (size_t i = 0; i < n; i++) {
		spool_import *im = v[i];
		if (im->result < 0)
			continue;
		if (many) {
			if (first_of_queue(v, i) && syncfs(im->q->tmpfd) != 0)
				fail_queue(v, n, im->q, errno, "sync");
		} else if (fdatasync(im->fd) != 0) {
			failed(im, errno, "fsync");
		}
	}
}

void
spool_import_publish(spool_import *const *v, size_t n)
{
	/* 2: into new/, once per id (a transfer retried while the first was in
	 * flight), within max-length (checked again here, under the queue's
	 * lock as mq-send does: requests admitted together must not overrun it) */
	int lockfd = -1;
	spool_queue *locked = NULL;
	int64_t room = 0;
	for (size_t i = 0; i < n; i++) {
		spool_import *im = v[i];
		if (im->result < 0)
			continue;
		if (im->q->cfg.max_length > 0 && locked != im->q) {
			if (lockfd >= 0)
				close(lockfd);
			locked = im->q;
			struct spool_err le = {0};
			if ((lockfd = queue_lock(im->q, &le)) < 0) {
				im->result = -1, im->err = le;
				locked = NULL;
				continue;
			}
			int64_t ready = queue_ready(im->q, NULL);
			room = ready < 0 ? 0 : im->q->cfg.max_length - ready;
		}
		/* a marker made since it began (its own check found none then) */
		bool dup = im->commits != im->q->commits && held_at(im->q, im->n.id, NULL, 0);
		for (size_t k = 0; k < i && !dup; k++)
			dup = v[k]->result > 0 && v[k]->q == im->q && strcmp(v[k]->n.id, im->n.id) == 0;
		if (dup) {
			im->result = 0;
			continue;
		}
		if (im->q->cfg.max_length > 0) {
			if (room <= 0) {
				im->result = -1;
				spool_fail(&im->err, EX_TEMPFAIL, "queue %s is full (max-length %lld)", im->q->name,
				           (long long)im->q->cfg.max_length);
				continue;
			}
			room--;
		}
		char to[NAME_LEN];
		name_format(to, sizeof to, &im->n);
		if (im->kenc[0]) { /* in line behind its key; the head of a free key into new/ */
			struct spool_err ke = {0};
			if (key_publish(im->q, im->q->tmpfd, im->tmpname, to, im->kenc, false, &ke) < 0) {
				im->result = -1, im->err = ke;
				continue;
			}
			im->tmp_left = false;
			continue;
		}
		if (renameat2(im->q->tmpfd, im->tmpname, im->q->newfd, to, RENAME_NOREPLACE) != 0) {
			if (errno != EINVAL && errno != ENOSYS) {
				failed(im, errno, "rename into new/");
				continue;
			}
			if (linkat(im->q->tmpfd, im->tmpname, im->q->newfd, to, 0) != 0) {
				failed(im, errno, "link into new/");
				continue;
			}
			unlinkat(im->q->tmpfd, im->tmpname, 0);
		}
		im->tmp_left = false;
	}
	if (lockfd >= 0)
		close(lockfd);
	for (size_t i = 0; i < n; i++)
		if (v[i]->result > 0 && first_of_queue(v, i) && fsync_dir(v[i]->q->newfd) != 0) {
			/* not known to be durable: the sender must not take it as
			 * done (it sends again), nor find it stored twice then */
			withdraw_queue(v, n, v[i]->q, errno);
		}
	for (size_t i = 0; i < n; i++)
		if (first_stored(v, i, -1))
			v[i]->q->commits++;
	/* 3: the markers, once the messages are durable.  Not synced: they
	 * only matter to a retry of a transfer whose answer was lost, and
	 * outlive a crash of the process; a power loss in the next seconds may
	 * cost such a retry a second copy (at least once, never lost). */
	for (size_t i = 0; i < n; i++)
		if (v[i]->result > 0 && first_stored(v, i, 1))
			mark_received(v, n, i);
}

/* received/ID for each import stored into the queue of v[first]: one file
 * holding a line "ID DIGEST" for each, and a hard link to it for every id
 * but the first (a directory entry each, not a file each). */
static void
mark_received(spool_import *const *v, size_t n, size_t first)
{
	spool_queue *q = v[first]->q;
	size_t cap = 0, len = 0;
	for (size_t i = first; i < n; i++)
		if (v[i]->q == q && v[i]->result > 0)
			cap += ULID_LEN + strlen(v[i]->digest) + 2;
	char *buf = malloc(cap + 1);
	if (!buf) {
		q->marks_missing = true; /* the messages stand; marked at the next look */
		return;
	}
	for (size_t i = first; i < n; i++)
		if (v[i]->q == q && v[i]->result > 0)
			len += (size_t)sprintf(buf + len, "%s %s\n", v[i]->n.id, v[i]->digest);
	char file[16 + ULID_LEN] = "";
	for (size_t i = first; i < n; i++) {
		spool_import *im = v[i];
		if (im->q != q || im->result <= 0)
			continue;
		char path[16 + ULID_LEN];
		snprintf(path, sizeof path, "received/%s", im->n.id);
		for (int tries = 0; tries < 2; tries++) {
			if (file[0] && linkat(q->fd, file, q->fd, path, 0) == 0)
				break;
			if (file[0] && errno == EEXIST) {
				/* an expired marker of the same id: its file may be
				 * another commit's, so it is replaced, never rewritten */
				unlinkat(q->fd, path, 0);
				continue;
			}
			/* the first, or the file is at its link limit: a new file */
			if (marker_file(q, path, buf, len) == 0)
				snprintf(file, sizeof file, "%s", path);
			else
				q->marks_missing = true; /* marked at the next look (spool_received) */
			break;
		}
	}
	free(buf);
}

static int
marker_file(spool_queue *q, const char *path, const char *buf, size_t len)
{
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
	int fd = openat(q->fd, path, flags, 0666);
	if (fd < 0 && errno == EEXIST && unlinkat(q->fd, path, 0) == 0)
		fd = openat(q->fd, path, flags, 0666);
	if (fd < 0 && errno == ENOENT && mkdirat(q->fd, "received", 0777) == 0) {
		fsync_dir(q->fd);
		fd = openat(q->fd, path, flags, 0666);
	}
	if (fd < 0)
		return -1;
	int rc = write_all(fd, buf, len);
	close(fd);
	if (rc != 0) /* a marker without its digest line would hide the id's */
		unlinkat(q->fd, path, 0);
	return rc;
}

struct have {
	char **ids;   /* sorted: the markers there are */
	size_t n;
	spool_queue *q;
	long made;
	int failed;   /* errno of a marker that could not be made */
};

static int
mark_missing(const struct spool_entry *en, void *arg)
{
	struct have *h = arg;
	const char *id = en->id;
	if (h->n && bsearch(&id, h->ids, h->n, sizeof *h->ids, strv_cmp))
		return 0;
	char path[16 + ULID_LEN];
	snprintf(path, sizeof path, "received/%s", en->id);
	int fd = openat(h->q->fd, path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd >= 0) {
		close(fd);
		h->made++;
	} else if (errno != EEXIST) {
		h->failed = errno;
	}
	return 0;
}

long
spool_received_repair(spool_queue *q, struct spool_err *e)
{
	struct name_list l = {0};
	struct have h = {.q = q};
	if (mkdirat(q->fd, "received", 0777) == 0)
		fsync_dir(q->fd);
	int fd = openat(q->fd, "received", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s/received", q->path);
	if (list_scan(&l, fd, e) != 0) {
		close(fd);
		return -1;
	}
	h.ids = l.v, h.n = l.n;
	if (h.n)
		qsort(h.ids, h.n, sizeof *h.ids, strv_cmp);
	int rc = spool_list(q, 0, 0, mark_missing, &h, e);
	list_clear(&l);
	close(fd);
	if (rc >= 0 && h.failed)
		return spool_fail_errno(e, h.failed, "mark %s/received", q->path);
	return rc < 0 ? -1 : h.made;
}

void
spool_import_free(spool_import *im)
{
	if (!im)
		return;
	if (im->fd >= 0)
		close(im->fd);
	if (im->tmp_left)
		unlinkat(im->q->tmpfd, im->tmpname, 0);
	free(im->head);
	free(im->hop);
	free(im->from);
	free(im);
}
