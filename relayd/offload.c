/* SPDX-License-Identifier: MIT */
/*
 * offload.c: one call at a time run in a thread of its own, its end told to
 * the loop through an eventfd.  For the receiver's data sync: a syncfs(2)
 * takes milliseconds, and while the loop waited in it no request was read
 * and no answer sent, so the sender's transfers and the receiver's sync took
 * turns instead of overlapping.  The call must touch only what the loop
 * leaves alone until it is told the call is done (file descriptors, and the
 * objects handed over); the thread takes no signal and allocates nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "relayd.h"

struct offload {
	pthread_t t;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	void (*fn)(void *);
	void *arg;
	bool job, finished, stop, busy; /* busy: handed over, its end not yet taken */
	int efd;
	struct loop *loop;
	struct loop_io *io;
	void (*done)(void *);
	void *done_arg;
};

static void *
offload_main(void *arg)
{
	struct offload *o = arg;
	pthread_mutex_lock(&o->mu);
	for (;;) {
		while (!o->job && !o->stop)
			pthread_cond_wait(&o->cv, &o->mu);
		if (!o->job)
			break;
		pthread_mutex_unlock(&o->mu);
		o->fn(o->arg);
		pthread_mutex_lock(&o->mu);
		o->job = false;
		o->finished = true;
		pthread_cond_broadcast(&o->cv);
		uint64_t one = 1;
		/* a lost wake-up would leave the commit unanswered for ever:
		 * an error other than EINTR is tried again too (a few times) */
		for (int tries = 0; write(o->efd, &one, sizeof one) < 0 && (errno == EINTR || tries < 3);
		     tries++)
			;
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

/* The call has ended: back in the loop. */
static void
take_end(struct offload *o)
{
	uint64_t k;
	while (read(o->efd, &k, sizeof k) < 0 && errno == EINTR)
		;
	o->finished = false;
	o->busy = false;
}

static void
on_end(void *arg, uint32_t events)
{
	struct offload *o = arg;
	(void)events;
	pthread_mutex_lock(&o->mu);
	bool fin = o->finished;
	pthread_mutex_unlock(&o->mu);
	if (!fin || !o->busy)
		return;
	take_end(o);
	o->done(o->done_arg);
}

struct offload *
offload_new(struct loop *l, void (*done)(void *), void *arg)
{
	struct offload *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->loop = l, o->done = done, o->done_arg = arg;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	if ((o->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		goto fail;
	if (!(o->io = loop_io_add(l, o->efd, EPOLLIN, on_end, o)))
		goto fail;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&o->t, NULL, offload_main, o);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0)
		return o;
	errno = rc;
fail:
	if (o->io)
		loop_io_del(l, o->io);
	if (o->efd >= 0)
		close(o->efd);
	free(o);
	return NULL;
}

bool
offload_busy(const struct offload *o)
{
	return o->busy;
}

void
offload_run(struct offload *o, void (*fn)(void *), void *arg)
{
	pthread_mutex_lock(&o->mu);
	o->fn = fn, o->arg = arg;
	o->job = true;
	o->busy = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

/* Wait for the call handed over, if any; its done callback is not run. */
void
offload_wait(struct offload *o)
{
	if (!o->busy)
		return;
	pthread_mutex_lock(&o->mu);
	while (!o->finished)
		pthread_cond_wait(&o->cv, &o->mu);
	pthread_mutex_unlock(&o->mu);
	take_end(o);
}

void
offload_free(struct offload *o)
{
	if (!o)
		return;
	offload_wait(o);
	pthread_mutex_lock(&o->mu);
	o->stop = true;
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->t, NULL);
	loop_io_del(o->loop, o->io);
	close(o->efd);
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}
