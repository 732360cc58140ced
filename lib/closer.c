/* SPDX-License-Identifier: MIT */
/*
 * closer.c: closing, off the caller's thread, the descriptors whose close
 * may wait on the disk (mq-relayd's forwards, mq-bridge out, mq-recv's
 * drains).  The last close of a file that was unlinked while open is when
 * the file system frees its blocks; ext4 mounted with `discard` (and other
 * file systems with online discard) then waits for one discard request per
 * file, 0.1-0.5 ms each: in a daemon's loop that stalled every other
 * transfer (bench/RESULTS.md: it was the relay sender's and the bridge's
 * largest cost), and it held mq-recv's drain of a durable backlog to the
 * disk's discard rate.  A few threads take those closes instead, a batch
 * at a time; they do nothing
 * else (no allocation, no library state, no signal), so a daemon's forks of
 * handlers are unaffected, and when they cannot keep up (or never started)
 * the caller closes inline, as before.
 */
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <unistd.h>

#include "spool_priv.h"

#define CLOSER_THREADS 4
#define CLOSER_RING 4096

static struct {
	pthread_mutex_t mu;
	pthread_cond_t more;
	int ring[CLOSER_RING];
	unsigned head, tail; /* ring[tail..head) are waiting */
	int nthreads;
	unsigned cap;   /* most waiting at once: a share of the descriptor limit */
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
spool_closer_start(void)
{
	sigset_t all, old;
	struct rlimit r;
	/* each waiting close holds a descriptor: a caller that claims faster
	 * than the disk discards must not run out of them (EMFILE) */
	cl.cap = CLOSER_RING;
	if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur != RLIM_INFINITY && r.rlim_cur / 4 < cl.cap)
		cl.cap = r.rlim_cur / 4 > 16 ? (unsigned)(r.rlim_cur / 4) : 16;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old); /* signals are the caller's (its signalfd) */
	while (cl.nthreads < CLOSER_THREADS &&
	       pthread_create(&cl.t[cl.nthreads], NULL, closer_main, NULL) == 0)
		cl.nthreads++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void
spool_closer_put(const int *fd, size_t n)
{
	size_t i = 0;
	pthread_mutex_lock(&cl.mu);
	if (cl.nthreads && !cl.stop)
		for (; i < n && cl.head - cl.tail < cl.cap; i++)
			if (fd[i] >= 0)
				cl.ring[cl.head++ % CLOSER_RING] = fd[i];
	if (i == 1)
		pthread_cond_signal(&cl.more);
	else if (i)
		pthread_cond_broadcast(&cl.more);
	pthread_mutex_unlock(&cl.mu);
	for (; i < n; i++) /* no thread, or the ring is full: here, as before */
		if (fd[i] >= 0)
			close(fd[i]);
}

/* Every close handed over is done once this returns (at exit). */
void
spool_closer_stop(void)
{
	pthread_mutex_lock(&cl.mu);
	cl.stop = true;
	pthread_cond_broadcast(&cl.more);
	pthread_mutex_unlock(&cl.mu);
	for (int i = 0; i < cl.nthreads; i++)
		pthread_join(cl.t[i], NULL);
	cl.nthreads = 0;
}
