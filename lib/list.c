/* SPDX-License-Identifier: MIT */
/*
 * list.c: the names of one directory, taken in name order.  Because names
 * sort in delivery order, the oldest due message is the smallest name; no
 * file is opened or stat()ed to decide.  A one-shot consumer wants only the
 * smallest few names, so the listing is not sorted until a few have been
 * taken (a linear minimum each time before that): the first message of a
 * 100,000-message backlog costs one readdir pass, not a sort.  Long-running
 * consumers keep the list and merge names reported by inotify, so a drain
 * stays linear instead of rescanning the directory per message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool_priv.h"

#define MIN_SCANS 4 /* linear minimum this many times, then sort */

void
list_clear(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof *l);
}

static int
push(struct name_list *l, const char *name, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return -1;
		l->v = v, l->cap = cap;
	}
	char *s = malloc(len + 1);
	if (!s)
		return -1;
	memcpy(s, name, len + 1);
	l->v[l->n++] = s;
	return 0;
}

int
list_scan(struct name_list *l, int dirfd, struct spool_err *e)
{
	list_clear(l);
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return spool_fail_errno(e, errno, "read directory");
	}
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (push(l, de->d_name, strlen(de->d_name)) != 0) {
			closedir(d);
			return spool_fail_errno(e, ENOMEM, "read directory");
		}
	}
	int err = errno;
	closedir(d);
	if (err)
		return spool_fail_errno(e, err, "read directory");
	l->sorted = l->n < 2;
	l->valid = true;
	return 0;
}

/* The smallest name not yet taken, moved to v[pos]; NULL when none left. */
const char *
list_peek(struct name_list *l)
{
	if (l->pos >= l->n)
		return NULL;
	if (!l->sorted) {
		if (l->takes < MIN_SCANS) {
			size_t m = l->pos;
			for (size_t i = l->pos + 1; i < l->n; i++)
				if (strcmp(l->v[i], l->v[m]) < 0)
					m = i;
			char *t = l->v[m];
			l->v[m] = l->v[l->pos];
			l->v[l->pos] = t;
			return l->v[l->pos];
		}
		qsort(l->v + l->pos, l->n - l->pos, sizeof *l->v, strv_cmp);
		l->sorted = true;
	}
	return l->v[l->pos];
}

/* The name at v[pos] has been dealt with. */
void
list_next(struct name_list *l)
{
	if (l->pos < l->n) {
		free(l->v[l->pos]);
		l->v[l->pos++] = NULL;
		l->takes++;
	}
	/* compact now and then so a long-lived list does not grow forever */
	if (l->pos > 1024 && l->pos * 2 > l->n) {
		memmove(l->v, l->v + l->pos, (l->n - l->pos) * sizeof *l->v);
		l->n -= l->pos;
		l->pos = 0;
	}
}

/* Merge one name into a list being consumed (it usually sorts last). */
void
list_insert(struct name_list *l, const char *name)
{
	if (name[0] == '.')
		return;
	if (push(l, name, strlen(name)) != 0) {
		l->valid = false; /* out of memory: the next take reads the directory */
		return;
	}
	if (!l->sorted)
		return;
	size_t lo = l->pos, hi = l->n - 1;
	char *s = l->v[hi];
	while (lo < hi) { /* first element greater than s */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(l->v[mid], s) > 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo < l->n - 1) {
		memmove(l->v + lo + 1, l->v + lo, (l->n - 1 - lo) * sizeof *l->v);
		l->v[lo] = s;
	}
}

static void
sift_down(char **h, size_t n, size_t i)
{
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && strcmp(h[c + 1], h[c]) > 0)
			c++;
		if (strcmp(h[c], h[i]) <= 0)
			return;
		char *t = h[c];
		h[c] = h[i];
		h[i] = t;
		i = c;
	}
}

/* The k smallest names not yet taken, in order, into out (pointers into l):
 * a max-heap of k, so O(n log k) rather than a sort of the whole listing. */
size_t
list_smallest(struct name_list *l, char **out, size_t k)
{
	size_t n = 0;
	for (size_t i = l->pos; i < l->n; i++) {
		if (n < k) {
			out[n++] = l->v[i];
			for (size_t j = n - 1; j > 0 && strcmp(out[(j - 1) / 2], out[j]) < 0; j = (j - 1) / 2) {
				char *t = out[j];
				out[j] = out[(j - 1) / 2];
				out[(j - 1) / 2] = t;
			}
		} else if (strcmp(l->v[i], out[0]) < 0) {
			out[0] = l->v[i];
			sift_down(out, n, 0);
		}
	}
	if (n > 1)
		qsort(out, n, sizeof *out, strv_cmp);
	return n;
}

/* Replace the listing with names read from a hint (already in order). */
int
list_load(struct name_list *l, const char *buf, size_t len)
{
	list_clear(l);
	for (const char *p = buf, *end = buf + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* a torn last line: ignore it */
		if (nl > p && nl - p < NAME_LEN) {
			if (push(l, p, (size_t)(nl - p)) != 0)
				return -1;
			l->v[l->n - 1][nl - p] = '\0';
		}
		p = nl + 1;
	}
	l->sorted = true;
	l->valid = true;
	return 0;
}
