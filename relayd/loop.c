/* SPDX-License-Identifier: MIT */
/*
 * loop.c: the event loop of loop.h.  Timers live in a binary min-heap keyed
 * by deadline, each knowing its own slot so that re-arming or disarming is
 * O(log n) without a search.  A source removed while a batch of epoll events
 * is being dispatched stays allocated (marked dead) until the batch is over,
 * since a later event of the same batch may still point at it.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "spool.h"

struct loop {
	int ep;
	struct loop_timer **heap;
	size_t n, cap;
	struct loop_io *dead;  /* removed sources waiting to be freed */
};

struct loop *
loop_new(void)
{
	struct loop *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	if ((l->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		free(l);
		return NULL;
	}
	return l;
}

static void
free_dead(struct loop *l)
{
	while (l->dead) {
		struct loop_io *io = l->dead;
		l->dead = io->next;
		free(io);
	}
}

void
loop_free(struct loop *l)
{
	if (!l)
		return;
	free_dead(l);
	for (size_t i = 0; i < l->n; i++)
		l->heap[i]->slot = 0;
	free(l->heap);
	close(l->ep);
	free(l);
}

struct loop_io *
loop_io_add(struct loop *l, int fd, uint32_t events, loop_io_fn *fn, void *arg)
{
	struct loop_io *io = calloc(1, sizeof *io);
	if (!io)
		return NULL;
	*io = (struct loop_io){.fd = fd, .events = events, .fn = fn, .arg = arg};
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int err = errno;
		free(io);
		errno = err;
		return NULL;
	}
	return io;
}

int
loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = io};
	if (io->events == events)
		return 0;
	io->events = events;
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, io->fd, &ev);
}

void
loop_io_del(struct loop *l, struct loop_io *io)
{
	if (!io)
		return;
	/* the fd may already be closed (EBADF): then it left the set by itself */
	epoll_ctl(l->ep, EPOLL_CTL_DEL, io->fd, NULL);
	io->dead = true;
	io->next = l->dead;
	l->dead = io;
}

/* ---- the deadline heap ---- */

static void
place(struct loop *l, size_t i, struct loop_timer *t)
{
	l->heap[i] = t;
	t->slot = i + 1;
}

static void
sift_up(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (l->heap[p]->at <= t->at)
			break;
		place(l, i, l->heap[p]);
		i = p;
	}
	place(l, i, t);
}

static void
sift_down(struct loop *l, size_t i)
{
	struct loop_timer *t = l->heap[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= l->n)
			break;
		if (c + 1 < l->n && l->heap[c + 1]->at < l->heap[c]->at)
			c++;
		if (l->heap[c]->at >= t->at)
			break;
		place(l, i, l->heap[c]);
		i = c;
	}
	place(l, i, t);
}

static void
unlink_timer(struct loop *l, struct loop_timer *t)
{
	size_t i = t->slot - 1;
	t->slot = 0;
	struct loop_timer *last = l->heap[--l->n];
	if (i == l->n)
		return;
	place(l, i, last);
	sift_down(l, i);
	sift_up(l, last->slot - 1);
}

void
loop_timer_init(struct loop_timer *t, loop_timer_fn *fn, void *arg)
{
	*t = (struct loop_timer){.fn = fn, .arg = arg};
}

void
loop_timer_set(struct loop *l, struct loop_timer *t, int64_t at)
{
	if (t->slot)
		unlink_timer(l, t);
	if (!at)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct loop_timer **h = realloc(l->heap, cap * sizeof *h); /* NOLINT(bugprone-sizeof-expression): of pointers */
		if (!h)
			return; /* out of memory: the periodic rescan is the safety net */
		l->heap = h, l->cap = cap;
	}
	t->at = at;
	place(l, l->n++, t);
	sift_up(l, l->n - 1);
}

void
loop_timer_earlier(struct loop *l, struct loop_timer *t, int64_t at)
{
	if (at && (!t->slot || at < t->at))
		loop_timer_set(l, t, at);
}

int
loop_once(struct loop *l, int max_wait)
{
	struct epoll_event evs[64];
	int timeout = max_wait;
	if (l->n) {
		int64_t ms = l->heap[0]->at - spool_now();
		ms = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : ms;
		if (timeout < 0 || ms < timeout)
			timeout = (int)ms;
	}
	int n = epoll_wait(l->ep, evs, 64, timeout);
	if (n < 0 && errno != EINTR)
		return -1;
	for (int i = 0; i < n; i++) {
		struct loop_io *io = evs[i].data.ptr;
		if (!io->dead)
			io->fn(io->arg, evs[i].events);
	}
	free_dead(l);
	/* what is due now; a callback that re-arms for now runs on the next pass */
	int64_t now = spool_now();
	size_t budget = l->n;
	while (l->n && l->heap[0]->at <= now && budget--) {
		struct loop_timer *t = l->heap[0];
		unlink_timer(l, t);
		t->fn(t->arg);
	}
	free_dead(l);
	return 0;
}
