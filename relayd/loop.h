/* SPDX-License-Identifier: MIT */
/*
 * loop.h: mq-relayd's event loop, after redis's ae.h: one epoll set whose
 * sources each carry their callback, and one registry of deadlines (a binary
 * heap of timers) that sets epoll_wait's timeout.  Everything the daemon
 * waits for goes through it: inotify, the signalfd, handler pidfds, the
 * sockets and timer of libcurl's multi interface, libmicrohttpd's epoll fd.
 */
#ifndef RELAYD_LOOP_H
#define RELAYD_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
typedef void loop_io_fn(void *arg, uint32_t events);
typedef void loop_timer_fn(void *arg);

struct loop_io {
	int fd;
	uint32_t events;
	loop_io_fn *fn;
	void *arg;
	bool dead;             /* removed: freed once the current batch is done */
	struct loop_io *next;  /* on the list of removed sources */
};

struct loop_timer {
	int64_t at;            /* ms since the epoch; meaningful while slot != 0 */
	size_t slot;           /* 1 + index in the heap, 0 when not armed */
	loop_timer_fn *fn;
	void *arg;
};

struct loop *loop_new(void);
void loop_free(struct loop *l);
/* Watch fd (EPOLLIN etc.): NULL with errno on failure. */
struct loop_io *loop_io_add(struct loop *l, int fd, uint32_t events, loop_io_fn *fn, void *arg);
int loop_io_mod(struct loop *l, struct loop_io *io, uint32_t events);
/* Stop watching; io is freed after the batch being dispatched (NULL: nothing). */
void loop_io_del(struct loop *l, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_fn *fn, void *arg);
/* Arm t for time at (0: disarm), replacing what it was set to. */
void loop_timer_set(struct loop *l, struct loop_timer *t, int64_t at);
/* Arm t for at only if it is unarmed or armed later (at 0: nothing). */
void loop_timer_earlier(struct loop *l, struct loop_timer *t, int64_t at);
static inline bool loop_timer_armed(const struct loop_timer *t) { return t->slot != 0; }

/* Wait for a source or the first deadline (at most until max_wait ms from
 * now, -1 for no bound), then run the callbacks of what is ready and of
 * every timer that is due.  -1 only when epoll_wait fails. */
int loop_once(struct loop *l, int max_wait);

#endif
