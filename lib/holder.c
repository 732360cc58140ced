/* SPDX-License-Identifier: MIT */
/*
 * holder.c: claims that end with the process holding them (spool-layout.md
 * 6.12).  A long-running consumer (mq-recv but -c, mq-relayd) keeps a holder
 * file QUEUE/holders/ULID.PID flock()ed for as long as it lives, and appends
 * to it the cur/ name of each claim it takes or extends: one write(2) a
 * claim, no sync.  The kernel drops the lock when the process dies, however
 * it dies; any tool that repairs the queue and can take the lock knows the
 * holder is gone, and takes back at once the claims its record names that
 * are still in cur/ under those names, instead of waiting out their leases.
 * A claim by hand (mq-recv -c) has no holder and keeps its lease.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

#define RECORD_MAX 65536       /* a record past this is rewritten with the live claims */
#define READ_MAX (1 << 22)     /* the most of a dead holder's record that is read */
#define HOLD_RETRY (60 * 1000) /* ms before a holder file that could not be made is tried again */
#define HOLD_BUF 4096          /* deferred records: written when this fills, or at a flush */

void
spool_queue_hold(spool_queue *q)
{
	q->hold = true;
}

void
spool_queue_hold_defer(spool_queue *q)
{
	q->hold_defer = true;
}

void
spool_queue_hold_flush(spool_queue *q)
{
	holder_flush(q);
}

/* holders/ULID.PID: made in tmp/ and locked there, then renamed into place,
 * so that no reaper ever sees it unlocked while we live. */
static int
holder_make(spool_queue *q)
{
	char id[ULID_LEN + 1], tmp[NAME_LEN];
	int64_t now = spool_now();
	if (now < q->hold_retry)
		return -1;
	ulid_new(id);
	snprintf(q->holdname, sizeof q->holdname, "%s.%d", id, (int)getpid());
	snprintf(tmp, sizeof tmp, "%s.holder", q->holdname);
	if (mkdirat(q->fd, "holders", 0777) != 0 && errno != EEXIST)
		goto fail;
	int fd = openat(q->tmpfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
	if (fd < 0)
		goto fail;
	char to[NAME_LEN + 16];
	snprintf(to, sizeof to, "holders/%s", q->holdname);
	if (flock(fd, LOCK_EX | LOCK_NB) != 0 || renameat(q->tmpfd, tmp, q->fd, to) != 0) {
		close(fd);
		unlinkat(q->tmpfd, tmp, 0);
		goto fail;
	}
	q->holdfd = fd;
	q->holdsize = 0;
	return 0;
fail:
	/* the claims keep their leases; try again later, not at every claim */
	q->holdname[0] = '\0';
	q->hold_retry = now + HOLD_RETRY;
	return -1;
}

static void
put(spool_queue *q, const char *buf, size_t len)
{
	if (write(q->holdfd, buf, len) == (ssize_t)len)
		q->holdsize += (int64_t)len;
}

/* Write what was deferred. */
void
holder_flush(spool_queue *q)
{
	if (q->holdlen && q->holdfd >= 0)
		put(q, q->holdbuf, q->holdlen);
	q->holdlen = 0;
}

/* Append one line, now or (deferred) at the next flush; best effort: a
 * claim not recorded keeps its lease. */
static void
record(spool_queue *q, const char *buf, size_t len)
{
	if (q->hold_defer && len <= HOLD_BUF) {
		if (!q->holdbuf && !(q->holdbuf = malloc(HOLD_BUF)))
			return put(q, buf, len);
		if (q->holdlen + len > HOLD_BUF)
			holder_flush(q);
		memcpy(q->holdbuf + q->holdlen, buf, len);
		q->holdlen += len;
		return;
	}
	holder_flush(q);
	put(q, buf, len);
}

/* Rewrite the record with the claims still held.  Killed in between, the
 * record may lack some of them: they keep their leases. */
static void
compact(spool_queue *q)
{
	size_t len = 0;
	char *buf = malloc(q->nheld * NAME_LEN + 1);
	if (!buf || ftruncate(q->holdfd, 0) != 0) {
		free(buf);
		return;
	}
	q->holdsize = 0;
	q->holdlen = 0; /* the deferred records are among the live claims */
	for (size_t i = 0; i < q->nheld; i++)
		if (!q->held[i]->done)
			len += (size_t)sprintf(buf + len, "%s\n", q->held[i]->name);
	if (len)
		put(q, buf, len);
	free(buf);
}

void
holder_note(spool_msg *m)
{
	spool_queue *q = m->q;
	char line[NAME_LEN + 1];
	if (!m->held || q->holdfd < 0)
		return;
	if (q->holdsize > RECORD_MAX)
		compact(q);
	int n = snprintf(line, sizeof line, "%s\n", m->name);
	record(q, line, (size_t)n);
}

void
holder_add(spool_msg *m)
{
	spool_queue *q = m->q;
	if (!q->hold || (q->holdfd < 0 && holder_make(q) != 0))
		return;
	if (q->nheld == q->heldcap) {
		size_t cap = q->heldcap ? q->heldcap * 2 : 16;
		/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers, sized right */
		spool_msg **v = realloc(q->held, cap * sizeof *v);
		if (!v)
			return; /* not recorded: its lease holds it */
		q->held = v, q->heldcap = cap;
	}
	q->held[q->nheld++] = m;
	m->held = true;
	holder_note(m);
}

void
holder_del(spool_msg *m)
{
	spool_queue *q = m->q;
	if (!m->held)
		return;
	for (size_t i = q->nheld; i-- > 0;)
		if (q->held[i] == m) {
			q->held[i] = q->held[--q->nheld];
			break;
		}
	m->held = false;
}

/* At the queue's close: a holder that holds nothing any more removes its
 * file; one that still holds claims (it is giving up on them) leaves it,
 * unlocked once closed, and the next tool that looks takes them back. */
void
holder_close(spool_queue *q)
{
	if (q->holdfd < 0) {
		free(q->holdbuf);
		q->holdbuf = NULL;
		return;
	}
	bool holding = false;
	for (size_t i = 0; i < q->nheld; i++)
		holding |= !q->held[i]->done;
	if (!holding) {
		char path[NAME_LEN + 16];
		snprintf(path, sizeof path, "holders/%s", q->holdname);
		unlinkat(q->fd, path, 0);
	} else {
		holder_flush(q);
	}
	free(q->holdbuf);
	q->holdbuf = NULL;
	q->holdlen = 0;
	close(q->holdfd);
	q->holdfd = -1;
	for (size_t i = 0; i < q->nheld; i++)
		q->held[i]->held = false;
	free(q->held);
	q->held = NULL;
	q->nheld = q->heldcap = 0;
}

/* ULID.PID, as holder_make names them; anything else is not ours. */
static bool
holder_name_ok(const char *s)
{
	char id[ULID_LEN + 1];
	if (strlen(s) < ULID_LEN + 2 || s[ULID_LEN] != '.')
		return false;
	memcpy(id, s, ULID_LEN);
	id[ULID_LEN] = '\0';
	const char *p = s + ULID_LEN + 1;
	return ulid_ok(id) && strspn(p, "0123456789") == strlen(p) && strlen(p) <= 10;
}

/*
 * The claims of one dead holder (we hold its lock): each cur/ name its
 * record lists that cur/ still has is taken back, due now, the delivery
 * counted (buried past max-attempts).  0 when all were, and the holder file
 * is removed; -1 when some could not be (tried again at the next look).
 */
static int
reap_one(spool_queue *q, int fd, struct name_list *cur, int64_t now,
         struct spool_repair *r, struct spool_err *e)
{
	char *buf = malloc(READ_MAX + 1);
	size_t len = 0, nv = 0;
	ssize_t k;
	if (!buf)
		return -1;
	while (len < READ_MAX && (k = read(fd, buf + len, READ_MAX - len)) > 0)
		len += (size_t)k;
	buf[len] = '\0';
	size_t lines = 0; /* the file is anyone's: count, do not assume */
	for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))); p++)
		lines++;
	char **v = malloc((lines + 1) * sizeof *v);
	if (!v) {
		free(buf);
		return -1;
	}
	for (char *line = buf, *nl; *line; line = nl + 1) {
		if (!(nl = strchr(line, '\n')))
			break; /* a torn last line names nothing */
		*nl = '\0';
		v[nv++] = line;
	}
	qsort(v, nv, sizeof *v, strv_cmp);
	int failed = 0;
	for (size_t i = 0; i < cur->n; i++) {
		struct spool_name n;
		if (!bsearch(&cur->v[i], v, nv, sizeof *v, strv_cmp) || name_parse(cur->v[i], &n) != 0)
			continue;
		int rc = take_back(q, cur->v[i], &n, now, "holder died", e);
		if (rc >= 0)
			cur->v[i][0] = '\0'; /* gone from cur/: the caller's pass skips it */
		if (rc > 0)
			r->leases++;
		else if (rc < 0 && (failed = 1, r->failed++, !r->err))
			r->err = errno ? errno : EIO;
	}
	free(v);
	free(buf);
	return failed ? -1 : 0;
}

int
holders_reap(spool_queue *q, struct name_list *cur, int64_t now, struct spool_repair *r,
             struct spool_err *e)
{
	struct name_list l = {0};
	int dfd = openat(q->fd, "holders", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return 0; /* nobody ever held a claim here */
	if (list_scan(&l, dfd, NULL) != 0) {
		close(dfd);
		return 0;
	}
	for (size_t i = 0; i < l.n; i++) {
		struct stat st;
		if (!holder_name_ok(l.v[i]) || strcmp(l.v[i], q->holdname) == 0)
			continue;
		int fd = openat(dfd, l.v[i], O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* a holder that lives keeps its lock: EWOULDBLOCK */
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    reap_one(q, fd, cur, now, r, e) == 0)
			unlinkat(dfd, l.v[i], 0); /* still locked: no one else reaps it meanwhile */
		close(fd);
	}
	list_clear(&l);
	close(dfd);
	return 0;
}
