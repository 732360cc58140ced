/* SPDX-License-Identifier: MIT */
/*
 * closer.c: closing, off the loop, the descriptors whose close may wait on
 * the disk.  The last close of a file that was unlinked while open is when
 * the file system frees its blocks; ext4 mounted with `discard` (and other
 * file systems with online discard) then waits for one discard request per
 * file, 0.1-0.5 ms each.  A forward acks a message by unlinking it while its
 * transfer still holds it open, so doing that close in the loop would stall
 * every other transfer for as long as the disk takes (bench/RESULTS.md: it
 * was the sender's largest cost).  A few threads take those closes instead;
 * they do nothing else (no allocation, no library state), so the daemon's
 * forks of handlers are unaffected, and when they cannot keep up the loop
 * closes inline, as before.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

#include "relayd.h"

#define CLOSER_THREADS 4
#define CLOSER_RING 1024

static struct {
	pthread_mutex_t mu;
	pthread_cond_t more;
	int ring[CLOSER_RING];
	unsigned head, tail; /* ring[tail..head) are waiting */
	int nthreads;
	bool stop;
	pthread_t t[CLOSER_THREADS];
} cl = {.mu = PTHREAD_MUTEX_INITIALIZER, .more = PTHREAD_COND_INITIALIZER};

static void *
closer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cl.mu);
	for (;;) {
		while (cl.head == cl.tail && !cl.stop)
			pthread_cond_wait(&cl.more, &cl.mu);
		if (cl.head == cl.tail)
			break;
		int fd = cl.ring[cl.tail++ % CLOSER_RING];
		pthread_mutex_unlock(&cl.mu);
		close(fd);
		pthread_mutex_lock(&cl.mu);
	}
	pthread_mutex_unlock(&cl.mu);
	return NULL;
}

void
closer_start(void)
{
	sigset_t all, old;
	sigfillset(&all);
	/* the loop takes signals through its signalfd: no thread may take one */
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (cl.nthreads < CLOSER_THREADS &&
	       pthread_create(&cl.t[cl.nthreads], NULL, closer_main, NULL) == 0)
		cl.nthreads++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void
closer_put(int fd)
{
	if (fd < 0)
		return;
	pthread_mutex_lock(&cl.mu);
	if (cl.nthreads == 0 || cl.stop || cl.head - cl.tail >= CLOSER_RING) {
		pthread_mutex_unlock(&cl.mu);
		close(fd);
		return;
	}
	cl.ring[cl.head++ % CLOSER_RING] = fd;
	pthread_cond_signal(&cl.more);
	pthread_mutex_unlock(&cl.mu);
}

/* Every close handed over is done once this returns (at exit). */
void
closer_stop(void)
{
	pthread_mutex_lock(&cl.mu);
	cl.stop = true;
	pthread_cond_broadcast(&cl.more);
	pthread_mutex_unlock(&cl.mu);
	for (int i = 0; i < cl.nthreads; i++)
		pthread_join(cl.t[i], NULL);
	cl.nthreads = 0;
}
