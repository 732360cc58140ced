/* SPDX-License-Identifier: MIT */
/*
 * reason.c: why the last delivery of a message failed (spool-layout.md 6.13).
 * A message waiting for a retry keeps it beside itself, in QUEUE/reasons/ID
 * (messages are never modified in place); a dead letter gets the same as its
 * Dead-* headers (bury.c).  The handler's stderr tail comes from job.c,
 * escaped here into lines that are valid header values.
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

#define LINE_MAX_OUT 998 /* a header value (section 5) */

size_t
reason_tail_lines(const char *raw, size_t len, bool cut, char *out, size_t outlen)
{
	size_t k = 0, lines = 0;
	const char *p = raw, *end = raw + len;
	if (outlen == 0)
		return 0;
	out[0] = '\0';
	if (cut) { /* the ring wrapped: its first line is a piece of one */
		const char *nl = memchr(p, '\n', len);
		p = nl ? nl + 1 : end;
	}
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	/* the last REASON_LINES lines */
	const char *s = end;
	while (s > p && lines < REASON_LINES) {
		s--;
		if (*s == '\n' && ++lines == REASON_LINES) {
			s++;
			break;
		}
	}
	while (s < end && k + 1 < outlen) {
		size_t col = 0;
		for (; s < end && *s != '\n'; s++) {
			unsigned char c = (unsigned char)*s;
			char esc[8];
			if (c < 0x20 || c == 0x7f)
				snprintf(esc, sizeof esc, c == '\t' ? "\\t" : "\\x%02x", c);
			else if (c == '\\')
				snprintf(esc, sizeof esc, "\\\\");
			else
				esc[0] = (char)c, esc[1] = '\0';
			size_t n = strlen(esc);
			if (col + n > LINE_MAX_OUT || k + n + 2 > outlen)
				continue; /* the rest of an overlong line is dropped */
			memcpy(out + k, esc, n);
			k += n, col += n;
		}
		if (s < end) { /* a LF between lines */
			s++;
			if (k + 2 < outlen)
				out[k++] = '\n';
		}
	}
	out[k] = '\0';
	return k;
}

/* "NAME: line\n" for each line of tail into buf: bytes written. */
size_t
reason_header_lines(const char *name, const char *tail, char *buf, size_t len)
{
	size_t k = 0;
	if (!tail)
		return 0;
	while (*tail) {
		size_t n = strcspn(tail, "\n");
		int w = snprintf(buf + k, len - k, "%s: %.*s\n", name, (int)n, tail);
		if (w < 0 || (size_t)w >= len - k)
			break;
		k += (size_t)w;
		tail += n;
		if (*tail == '\n')
			tail++;
	}
	return k;
}

void
reason_write(spool_queue *q, const spool_msg *m, const char *status, int64_t next_try)
{
	char buf[REASON_TAIL_OUT + 512], tmp[NAME_LEN + 16], path[48], at[40], nt[40];
	int n = snprintf(buf, sizeof buf, "Id: %s\nStatus: ", m->n.id);
	for (const char *s = status ? status : ""; *s && n < 240; s++)
		buf[n++] = (unsigned char)*s < 0x20 ? ' ' : *s;
	n += snprintf(buf + n, sizeof buf - (size_t)n, "\nAt: %s\nAttempts: %u\nNext-Try: %s\n",
	              spool_fmt_time(spool_now(), at, sizeof at), m->n.attempts,
	              spool_fmt_time(next_try, nt, sizeof nt));
	n += (int)reason_header_lines("Stderr", m->stderr_tail, buf + n, sizeof buf - (size_t)n);
	snprintf(tmp, sizeof tmp, "%s.%u.reason", m->n.id, m->n.attempts);
	snprintf(path, sizeof path, "reasons/%s", m->n.id);
	unlinkat(q->tmpfd, tmp, 0); /* left by one that died: ours to replace */
	int fd = spool_open_file(q->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0666, NULL);
	if (fd < 0)
		return; /* a reason is an explanation, never a reason to fail the retry */
	int ok = write_all(fd, buf, (size_t)n) == 0;
	close(fd);
	/* reasons/ is made by the first one, unsynced like what goes in it */
	if (ok && renameat(q->tmpfd, tmp, q->fd, path) != 0)
		ok = errno == ENOENT && (mkdirat(q->fd, "reasons", 0777) == 0 || errno == EEXIST) &&
		     renameat(q->tmpfd, tmp, q->fd, path) == 0;
	if (!ok)
		unlinkat(q->tmpfd, tmp, 0);
}

void
reason_remove(spool_queue *q, const char *id)
{
	char path[48];
	snprintf(path, sizeof path, "reasons/%s", id);
	unlinkat(q->fd, path, 0);
}

/* Copy the value of each "Name: " line of the block [p, end) into f. */
static void
parse_lines(const char *p, const char *end, const char *const names[4], struct spool_failure *f)
{
	size_t k = 0;
	char t[40];
	while (p < end && *p != '\n') {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		int len = (int)(nl - p);
		for (int i = 0; i < 4; i++) {
			size_t nn = strlen(names[i]);
			if ((size_t)len <= nn + 1 || strncmp(p, names[i], nn) != 0 || p[nn] != ':' ||
			    p[nn + 1] != ' ')
				continue;
			const char *v = p + nn + 2;
			int vl = len - (int)nn - 2;
			if (i == 0) {
				snprintf(f->status, sizeof f->status, "%.*s", vl, v);
			} else if (i == 1 || i == 2) {
				snprintf(t, sizeof t, "%.*s", vl, v);
				int64_t ms = spool_parse_time(t);
				*(i == 1 ? &f->at : &f->next_try) = ms > 0 ? ms : 0;
			} else if (k + (size_t)vl + 2 < sizeof f->stderr_tail) {
				if (k)
					f->stderr_tail[k++] = '\n';
				memcpy(f->stderr_tail + k, v, (size_t)vl);
				k += (size_t)vl;
				f->stderr_tail[k] = '\0';
			}
		}
		p = nl + 1;
	}
}

int
spool_entry_failure(spool_queue *q, const struct spool_entry *en, struct spool_failure *f)
{
	static const char *const waiting[4] = {"Status", "At", "Next-Try", "Stderr"};
	static const char *const dead[4] = {"Dead-Status", "Dead-Date", "-", "Dead-Stderr"};
	char buf[REASON_TAIL_OUT + 2048], path[48];
	int fd;
	memset(f, 0, sizeof *f);
	if (en->state == SPOOL_DEAD) {
		fd = spool_open_file(AT_FDCWD, en->path, O_RDONLY, 0, NULL);
	} else if (en->state == SPOOL_READY || en->state == SPOOL_DELAYED) {
		if (en->attempts == 0)
			return 0; /* never delivered: never failed (a replay drops it) */
		snprintf(path, sizeof path, "reasons/%s", en->id);
		fd = spool_open_file(q->fd, path, O_RDONLY, 0, NULL);
	} else {
		return 0;
	}
	if (fd < 0)
		return 0;
	ssize_t r = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	const char *end = buf + r;
	if (en->state == SPOOL_DEAD) {
		if (strncmp(buf, "Dead-Reason: ", 13) != 0)
			return 0;
		/* the latest set only: it ends where the next Dead-Reason or a
		 * header of the message begins */
		const char *p = buf;
		while ((p = memchr(p, '\n', (size_t)(end - p))) && ++p < end)
			if (strncmp(p, "Dead-", 5) != 0 || strncmp(p, "Dead-Reason: ", 13) == 0) {
				end = p;
				break;
			}
	}
	parse_lines(buf, end, en->state == SPOOL_DEAD ? dead : waiting, f);
	return 1;
}

/* The full repair: reasons whose message is no longer waiting (acked or
 * buried by a tool that died before removing it, or by hand).  Only those
 * older than a minute: a reason is written just before its message's
 * rename into new/, and a message moves between the listings. */
static int
cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, ULID_LEN);
}

/* The ids of the messages in dirfd, sorted, into *ids: their number, or -1. */
static long
scan_ids(int dirfd, char (**ids)[ULID_LEN], size_t *cap, size_t n0)
{
	struct name_list l = {0};
	struct spool_name nm;
	size_t n = n0;
	if (list_scan(&l, dirfd, NULL) != 0)
		return -1;
	for (size_t i = 0; i < l.n; i++) {
		if (name_parse(l.v[i], &nm) != 0)
			continue;
		if (n == *cap) {
			size_t nc = *cap ? *cap * 2 : 256;
			char(*v)[ULID_LEN] = realloc(*ids, nc * sizeof **ids);
			if (!v) {
				list_clear(&l);
				return -1;
			}
			*ids = v, *cap = nc;
		}
		memcpy((*ids)[n++], nm.id, ULID_LEN);
	}
	list_clear(&l);
	return (long)n;
}

/* The full repair: reasons whose message is no longer waiting (acked or
 * buried by a tool that died before removing it, or removed by hand).  Only
 * those older than REASON_GRACE: a reason is written just before its
 * message's rename into new/, and a message moves between the listings. */
long
reason_sweep(spool_queue *q, int64_t now)
{
	int fd = openat(q->fd, "reasons", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct name_list l = {0};
	char(*ids)[ULID_LEN] = NULL;
	size_t cap = 0;
	long k = 0, n;
	if (list_scan(&l, fd, NULL) == 0 && l.n > 0 && (n = scan_ids(q->newfd, &ids, &cap, 0)) >= 0 &&
	    (n = scan_ids(q->curfd, &ids, &cap, (size_t)n)) >= 0) {
		if (n > 1)
			qsort(ids, (size_t)n, sizeof *ids, cmp_id);
		for (size_t i = 0; i < l.n; i++) {
			struct stat st;
			if (strlen(l.v[i]) != ULID_LEN || !ulid_ok(l.v[i]))
				continue; /* not a reason: left alone */
			if (n > 0 && bsearch(l.v[i], ids, (size_t)n, sizeof *ids, cmp_id))
				continue;
			if (fstatat(fd, l.v[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
			    (int64_t)st.st_mtim.tv_sec * 1000 + REASON_GRACE < now &&
			    unlinkat(fd, l.v[i], 0) == 0)
				k++;
		}
	}
	free(ids);
	list_clear(&l);
	close(fd);
	return k;
}
