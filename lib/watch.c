/* SPDX-License-Identifier: MIT */
/*
 * watch.c: inotify on the new/ directories of queues, the one place that
 * knows inotify.  A name that arrives is merged into its queue's listing; an
 * overflow makes every watched queue read its directory again.  inotify is
 * only a hint: callers also rescan on start and on a timer.
 *
 * For a queue whose claims this process holds (spool_queue_hold), its
 * holders/ is watched too: a holder file closed after writing is a holder
 * that ended (spool-layout.md 6.12), perhaps killed, so the queue is
 * repaired at its next claim and its caller told to look again.
 *
 * The queue directory itself is watched for its pause marker (pause.c): the
 * marker appearing or going is told as SPOOL_WATCH_PAUSE, so that a paused
 * consumer waits for an event, not a timer.  And a producer waiting for room
 * (send.c, mq-send -l into a full queue) watches new/ and cur/ for names
 * leaving them (room_watch, room_wait).
 *
 * A tally (mq-stat -w) counts the state changes of queues from the names
 * that arrive and leave: a send, a retry, a burial, an ack.  Only looking:
 * inotify needs no more than read permission.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

struct wq {
	int wd;
	spool_queue *q;
	int hwd;       /* the watch of q's holders/, or -1 */
	int pwd;       /* the watch of the queue directory (its pause marker), or -1 */
};

struct spool_watch {
	int fd;
	struct wq *v;
	size_t n, cap;
};

spool_watch *
spool_watch_new(struct spool_err *e)
{
	spool_watch *w = calloc(1, sizeof *w);
	if (!w)
		return spool_fail_errno(e, errno, "inotify"), NULL;
	if ((w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		free(w);
		return spool_fail_errno(e, errno, "inotify_init"), NULL;
	}
	return w;
}

int
spool_watch_fd(const spool_watch *w)
{
	return w->fd;
}

int
spool_watch_add(spool_watch *w, spool_queue *q, struct spool_err *e)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/new", q->path);
	int wd = inotify_add_watch(w->fd, path,
	                           IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
	if (wd < 0)
		return spool_fail_errno(e, errno, "watch %s", path);
	int hwd = -1;
	if (q->hold) { /* a hint like the other: without it, the periodic repair */
		snprintf(path, sizeof path, "%s/holders", q->path);
		mkdirat(q->fd, "holders", 0777);
		hwd = inotify_add_watch(w->fd, path, IN_CLOSE_WRITE | IN_ONLYDIR);
	}
	/* without it, a paused consumer notices a resume at its next rescan */
	int pwd = inotify_add_watch(w->fd, q->path,
	                            IN_MOVED_TO | IN_CREATE | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR);
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].q == q) {
			w->v[i].wd = wd;
			w->v[i].hwd = hwd;
			w->v[i].pwd = pwd;
			return wd;
		}
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 8;
		struct wq *v = realloc(w->v, cap * sizeof *v);
		if (!v)
			return spool_fail_errno(e, ENOMEM, "watch %s", path);
		w->v = v, w->cap = cap;
	}
	w->v[w->n++] = (struct wq){wd, q, hwd, pwd};
	return wd;
}

void
spool_watch_remove(spool_watch *w, spool_queue *q)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->v[i].q == q) {
			int wd = w->v[i].wd, hwd = w->v[i].hwd, pwd = w->v[i].pwd;
			w->v[i] = w->v[--w->n];
			/* two queue objects of one directory (two consumers) share a wd */
			bool shared = false, hshared = false, pshared = false;
			for (size_t k = 0; k < w->n; k++) {
				shared |= w->v[k].wd == wd;
				hshared |= w->v[k].hwd == hwd;
				pshared |= w->v[k].pwd == pwd;
			}
			if (wd >= 0 && !shared)
				inotify_rm_watch(w->fd, wd);
			if (hwd >= 0 && !hshared)
				inotify_rm_watch(w->fd, hwd);
			if (pwd >= 0 && !pshared)
				inotify_rm_watch(w->fd, pwd);
			return;
		}
}

int
spool_watch_read(spool_watch *w, spool_watch_fn *fn, void *arg, struct spool_err *e)
{
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	int any = 0;
	for (;;) {
		ssize_t r = read(w->fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return any;
			return spool_fail_errno(e, errno, "read inotify");
		}
		for (char *p = buf; p < buf + r;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			any = 1;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < w->n; i++)
					spool_queue_rescan(w->v[i].q);
				if (fn)
					fn(arg, NULL, SPOOL_WATCH_OVERFLOW);
				continue;
			}
			/* every queue object of that directory hears of it; fn may remove
			 * watches, so the matches are collected before it is called */
			spool_queue *hit[16];
			size_t nhit = 0;
			if (ev->wd >= 0) { /* a holder ended: repair, and look again */
				for (size_t i = 0; i < w->n && nhit < 16; i++) {
					struct wq *x = &w->v[i];
					if (x->hwd != ev->wd)
						continue;
					if (ev->mask & IN_IGNORED) {
						x->hwd = -1; /* holders/ went away: the timers remain */
					} else if (ev->mask & IN_CLOSE_WRITE) {
						/* a holder that ended well removed its file first */
						char path[NAME_MAX + 16];
						struct stat st;
						snprintf(path, sizeof path, "holders/%s", ev->len ? ev->name : "");
						if (fstatat(x->q->fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0)
							continue;
						x->q->repaired = false;
						hit[nhit++] = x->q;
					}
				}
				for (size_t i = 0; fn && i < nhit; i++)
					fn(arg, hit[i], SPOOL_WATCH_ARRIVED);
				if (nhit)
					continue;
			}
			if (ev->wd >= 0) { /* the pause marker came or went */
				for (size_t i = 0; i < w->n && nhit < 16; i++) {
					struct wq *x = &w->v[i];
					if (x->pwd != ev->wd)
						continue;
					if (ev->mask & IN_IGNORED)
						x->pwd = -1;
					else if (ev->len && strcmp(ev->name, "paused") == 0)
						hit[nhit++] = x->q;
				}
				for (size_t i = 0; fn && i < nhit; i++)
					fn(arg, hit[i], SPOOL_WATCH_PAUSE);
				if (nhit)
					continue;
			}
			bool lost = ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF);
			bool arrived = ev->len && (ev->mask & (IN_MOVED_TO | IN_CREATE));
			for (size_t i = 0; i < w->n && nhit < 16; i++) {
				struct wq *x = &w->v[i];
				if (x->wd != ev->wd || (!lost && !arrived))
					continue;
				if (lost && (ev->mask & IN_IGNORED))
					x->wd = -1;
				else if (arrived)
					spool_queue_arrived(x->q, ev->name);
				hit[nhit++] = x->q;
			}
			for (size_t i = 0; fn && i < nhit; i++)
				fn(arg, hit[i], lost ? SPOOL_WATCH_LOST : SPOOL_WATCH_ARRIVED);
		}
	}
}

int
room_watch(spool_queue *q, struct spool_err *e)
{
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return spool_fail_errno(e, errno, "inotify_init");
	const char *subs[] = {"new", "cur"};
	for (size_t i = 0; i < 2; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", q->path, subs[i]);
		if (inotify_add_watch(fd, path, IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR) < 0) {
			int err = errno;
			close(fd);
			return spool_fail_errno(e, err, "watch %s", path);
		}
	}
	return fd;
}

void
room_wait(int fd, int ms)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd = {fd, POLLIN, 0};
	if (poll(&pfd, 1, ms) > 0)
		while (read(fd, buf, sizeof buf) > 0)
			; /* what left does not matter: the caller counts again */
}

/* ---- tally: what happened to queues, counted from their events ---- */

enum { T_NEW, T_CUR, T_DEAD, T_DONE, T_NDIR };

struct twd {
	int wd;
	size_t slot;   /* the caller's index of the queue */
	int dir;       /* T_NEW ... */
};

struct spool_tally {
	int fd;
	struct twd *v;
	size_t n, cap;
};

spool_tally *
spool_tally_new(struct spool_err *e)
{
	spool_tally *t = calloc(1, sizeof *t);
	if (!t || (t->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		int err = errno;
		free(t);
		return spool_fail_errno(e, err, "inotify_init"), NULL;
	}
	return t;
}

int
spool_tally_fd(const spool_tally *t)
{
	return t->fd;
}

int
spool_tally_add(spool_tally *t, spool_queue *q, size_t slot, struct spool_err *e)
{
	static const char *const dirs[T_NDIR] = {"new", "cur", "dead", "done"};
	static const uint32_t masks[T_NDIR] = {IN_MOVED_TO | IN_CREATE, IN_DELETE, IN_MOVED_TO,
	                                       IN_MOVED_TO};
	for (int d = 0; d < T_NDIR; d++) {
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", q->path, dirs[d]);
		int wd = inotify_add_watch(t->fd, path, masks[d] | IN_ONLYDIR);
		if (wd < 0) {
			if (errno == ENOENT && d >= T_DEAD)
				continue; /* made at the first burial or kept ack: counted from the next look */
			return spool_fail_errno(e, errno, "watch %s", path);
		}
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 16;
			struct twd *v = realloc(t->v, cap * sizeof *v);
			if (!v)
				return spool_fail_errno(e, ENOMEM, "watch %s", path);
			t->v = v, t->cap = cap;
		}
		t->v[t->n++] = (struct twd){wd, slot, d};
	}
	return 0;
}

int
spool_tally_read(spool_tally *t, struct spool_tally_counts *c, size_t nslots)
{
	char buf[65536] __attribute__((aligned(__alignof__(struct inotify_event))));
	int any = 0;
	for (;;) {
		ssize_t len = read(t->fd, buf, sizeof buf);
		if (len <= 0)
			return len < 0 && errno != EAGAIN && errno != EINTR ? -1 : any;
		any = 1;
		for (char *p = buf; p < buf + len;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (size_t i = 0; i < nslots; i++)
					c[i].lost = true;
				continue;
			}
			const struct twd *x = NULL;
			for (size_t i = 0; i < t->n && !x; i++)
				if (t->v[i].wd == ev->wd)
					x = &t->v[i];
			if (!x || !ev->len || x->slot >= nslots || *ev->name == '.')
				continue;
			struct spool_name n;
			switch (x->dir) {
			case T_NEW: /* a send or replay arrives unattempted; a retry after a delivery */
				if (name_parse(ev->name, &n) == 0)
					n.attempts ? c[x->slot].failed++ : c[x->slot].sent++;
				break;
			case T_CUR: c[x->slot].acked++; break; /* an ack removes its claim */
			case T_DEAD: c[x->slot].failed++; break;
			case T_DONE: c[x->slot].acked++; break; /* an ack that keeps the message */
			}
		}
	}
}

void
spool_tally_free(spool_tally *t)
{
	if (!t)
		return;
	close(t->fd);
	free(t->v);
	free(t);
}

void
spool_watch_free(spool_watch *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w->v);
	free(w);
}
