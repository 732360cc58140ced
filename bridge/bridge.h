/* SPDX-License-Identifier: MIT */
/*
 * bridge.h: mq-bridge, a queue to a NATS JetStream subject (out) and a
 * JetStream durable pull consumer to a queue (in).  The only code that
 * links libnats; lib/ never sees its headers (the Makefile's lib-check).
 *
 * Threads: libnats runs its own (the socket reader, the flusher, the
 * delivery of PubAcks).  Only the main thread touches the spool; the
 * PubAck handler copies what it was told into a list under a mutex and
 * wakes the main thread through an eventfd.  The process never forks.
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli.h"

struct bridge {
	/* options */
	const char *dir;        /* -d */
	char **servers;         /* -s, split at commas */
	int nservers;
	const char *creds;      /* --creds */
	char *token;            /* the first line of --token-file */
	long window;            /* -n: out: publishes in flight; in: fetch batch */
	int64_t timeout;        /* -t: out: the wait for a PubAck; in: AckWait of a consumer made */
	bool drain;             /* -D: leave once nothing is left to do */
	/* state */
	natsConnection *nc;
	jsCtx *js;
	int sigfd;              /* SIGTERM, SIGINT, SIGHUP (signalfd) */
	int evfd;               /* libnats threads wake the main thread (eventfd) */
	volatile int connected; /* 1 while the connection is up (its callbacks) */
	bool stop;              /* a signal came */
	volatile int closing;   /* bridge_close: a disconnection is ours, not news */
	spool *sp;
	spool_queue *q;
};

/* Connect with the options of b, retrying in the background when no server
 * answers yet (the bridge starts before its cluster).  jo gets the JetStream
 * options to create the context with (filled by the caller before). */
int bridge_connect(struct bridge *b, jsOptions *jo);
void bridge_close(struct bridge *b);
/* Wake the main thread (any thread). */
void bridge_wake(struct bridge *b);
/* Read pending wake-ups and signals: sets b->stop on SIGTERM/SIGINT. */
void bridge_events(struct bridge *b);
/* Sleep up to ms, ended early by a signal or a wake-up. */
void bridge_rest(struct bridge *b, int64_t ms);
/* What status s means, with libnats's last error text when it has one. */
const char *bridge_strerror(natsStatus s, char *buf, size_t len);
/* Full jitter in [0, min(cap, first * 2^(n-1))] of the queue's backoff. */
int64_t bridge_jitter(const spool_queue *q, int n);

/* closer.c: the last close of acked message files (their blocks freed, a
 * discard each on ext4 with `discard`) in threads of its own, a batch at a
 * time; fds of -1 are passed over. */

int bridge_out(struct bridge *b, const char *queue, const char *subject);
int bridge_in(struct bridge *b, const char *stream, const char *consumer, const char *queue);

#endif
