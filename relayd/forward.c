/* SPDX-License-Identifier: MIT */
/*
 * forward.c: consumers whose handler is an HTTP PUT of the message file to
 * a peer relay (PROTOCOL.md), on libcurl's multi interface inside the
 * daemon's loop: curl tells which sockets to watch and when to call it back
 * (CURLMOPT_SOCKETFUNCTION, CURLMOPT_TIMERFUNCTION, after curl's
 * docs/examples/ephiperfifo.c); connections are reused from its cache;
 * several transfers are in flight at once, and no thread is made.
 *
 * The answer settles the delivery (lib/settle.c): 200/201 acks.  A peer
 * that cannot take the message now (no connection, 408, 429, 502, 503, 504,
 * 507) gets it again later without an attempt being counted, and the
 * forward rests for an exponential backoff with full jitter, never less than
 * Retry-After: a collector down for a day costs no dead letters.  500 and
 * other 5xx count an attempt; other 4xx (and 508, a loop) bury the message
 * with the status and the answer's first line.  401 and 403 pause the
 * forward (loudly) rather than bury everything.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"
#include "relayd.h"

#define DIGEST_MAX (64 << 20) /* larger files are sent without Content-Digest (one read, not two) */
#define BODY_INLINE (60 << 10) /* files up to this are read once and sent with the request head */
#define EXPECT_MIN (1 << 20)  /* from this size, ask before sending the body (Expect: 100-continue) */
#define PAUSE_FOR (60 * 1000) /* 401/403: try again after this long, or on SIGHUP */
#define CONNECT_TIMEOUT 10000
#define LAT_NB 12

/* upper bounds (seconds) of the send-to-forward latency histogram */
static const double lat_le[LAT_NB] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 600, 3600};

struct fwd_multi {
	struct relayd *r;
	CURLM *multi;
	struct loop_timer timer, stop_timer;
};

struct fwd {
	char *token;            /* from token-file, or NULL */
	char *peer;             /* the URL without credentials, for logs and labels */
	int fails;              /* consecutive times the peer could not take a message */
	unsigned epoch;         /* one more at each of them: see xfer.epoch */
	long credit;            /* acks since the width last grew */
	long low_width;         /* the lowest width logged */
	bool paused;            /* 401/403 */
	char last_error[256];
	long long by_status[6]; /* answers by class (0: no answer) */
	long long forwarded, retried, dead, inflight_peak;
	long long lat[LAT_NB + 1];
	double lat_sum;
};

struct xfer {
	struct work w;          /* first: the daemon's list of deliveries */
	struct relayd *r;
	spool_msg *m;
	CURL *h;
	int fd;                 /* the message's own (spool_msg_file): not ours to close */
	off_t size, off;
	const char *body;       /* the whole file, when it is small (BODY_INLINE) */
	char *body_buf;         /* body, when read here rather than lent by the message */
	struct curl_slist *hdrs;
	char resp[200];         /* the answer's first line */
	size_t resplen;
	long retry_after;       /* s */
	char errbuf[CURL_ERROR_SIZE];
	struct loop_timer tick; /* the lease's heartbeat */
	int sock_err;           /* its socket could not be watched: the tick ends it */
	unsigned epoch;         /* the forward's at the start: a transfer that was already in
	                         * flight when the peer last failed does not lengthen the rest */
};

static struct fwd_multi *multi_get(struct relayd *r);

/* ---- curl's side of the loop ---- */

static void check_done(struct fwd_multi *fm);

struct sock {
	struct fwd_multi *fm;
	struct loop_io *io;
	curl_socket_t fd;
};

static void
sock_event(void *arg, uint32_t events)
{
	struct sock *s = arg;
	struct fwd_multi *fm = s->fm;
	int mask = (events & EPOLLIN ? CURL_CSELECT_IN : 0) | (events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
	           (events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
	int running;
	curl_multi_socket_action(fm->multi, s->fd, mask, &running);
	check_done(fm);
}

/* The socket of easy's transfer cannot be watched: unwatched, it would
 * stall until its timeout (and its lease be extended all along), so it
 * is ended at once, as a transfer without an answer, by its tick. */
static int
sock_failed(struct fwd_multi *fm, CURL *easy, curl_socket_t fd)
{
	struct xfer *x = NULL;
	int err = errno;
	logmsg(LOG_ERR, "forward: watch socket %d: %s", (int)fd, strerror(err));
	curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
	if (!x)
		return -1;
	x->sock_err = err;
	loop_timer_set(fm->r->loop, &x->tick, 1);
	return 0;
}

static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct fwd_multi *fm = userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			loop_io_del(fm->r->loop, s->io);
			free(s);
			curl_multi_assign(fm->multi, fd, NULL);
		}
		return 0;
	}
	uint32_t ev = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
	if (!s) {
		if (!(s = calloc(1, sizeof *s)))
			return errno = ENOMEM, sock_failed(fm, easy, fd);
		s->fm = fm;
		s->fd = fd;
		if (!(s->io = loop_io_add(fm->r->loop, fd, ev, sock_event, s))) {
			free(s);
			return sock_failed(fm, easy, fd);
		}
		curl_multi_assign(fm->multi, fd, s);
	} else if (loop_io_mod(fm->r->loop, s->io, ev) != 0) {
		return sock_failed(fm, easy, fd);
	}
	return 0;
}

static int
timer_cb(CURLM *multi, long ms, void *userp)
{
	struct fwd_multi *fm = userp;
	(void)multi;
	loop_timer_set(fm->r->loop, &fm->timer, ms < 0 ? 0 : spool_now() + ms);
	if (ms == 0) /* "now": the loop runs due timers right after its wait */
		loop_timer_set(fm->r->loop, &fm->timer, 1);
	return 0;
}

static void
on_timer(void *arg)
{
	struct fwd_multi *fm = arg;
	int running;
	curl_multi_socket_action(fm->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(fm);
}

/* ---- one transfer ---- */

static size_t
read_body(char *buf, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t want = size * n;
	ssize_t r;
	while ((r = pread(x->fd, buf, want, x->off)) < 0 && errno == EINTR)
		;
	if (r < 0)
		return CURL_READFUNC_ABORT;
	x->off += r;
	return (size_t)r;
}

/* A small file whole into x->body: -1 with errno when it cannot be read. */
static int
read_whole(struct xfer *x)
{
	if (!(x->body = x->body_buf = malloc(x->size ? (size_t)x->size : 1)))
		return -1;
	for (off_t off = 0; off < x->size;) {
		ssize_t r = pread(x->fd, x->body_buf + off, (size_t)(x->size - off), off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO; /* shorter than it was: not a message to send */
			return -1;
		}
		off += r;
	}
	return 0;
}

static size_t
keep_answer(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, room = sizeof x->resp - 1 - x->resplen;
	if (room) {
		size_t k = len < room ? len : room;
		memcpy(x->resp + x->resplen, p, k);
		x->resplen += k;
		x->resp[x->resplen] = '\0';
	}
	return len;
}

static size_t
header_line(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	long s = retry_after(p, len);
	if (s >= 0)
		x->retry_after = s;
	return len;
}

/* The message file's sha-256 as RFC 9530 wants it: of mem (size bytes)
 * when it is not NULL, else read from fd. */
static int
digest_file(int fd, off_t size, const char *mem, char *out, size_t len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	char buf[65536];
	off_t off = 0;
	int rc = -1;
	if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL))
		goto out;
	if (mem)
		EVP_DigestUpdate(md, mem, (size_t)size), off = size;
	while (off < size) {
		ssize_t r = pread(fd, buf, sizeof buf, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		EVP_DigestUpdate(md, buf, (size_t)r);
		off += r;
	}
	unsigned char d[32], b64[64];
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, d, &n);
	EVP_EncodeBlock(b64, d, (int)n);
	snprintf(out, len, "Content-Digest: sha-256=:%s:", b64);
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

static void
xfer_free(struct xfer *x)
{
	struct relayd *r = x->r;
	loop_timer_set(r->loop, &x->tick, 0);
	if (x->h) {
		curl_multi_remove_handle(r->fm->multi, x->h);
		curl_easy_cleanup(x->h);
	}
	curl_slist_free_all(x->hdrs);
	free(x->body_buf);
	spool_msg_free(x->m); /* its descriptor to the closer threads (closer.c) */
	work_remove(r, &x->w);
	free(x);
}

static void settle(struct xfer *x, CURLcode res);

static void
on_tick(void *arg)
{
	struct xfer *x = arg;
	struct spool_err e = {0};
	if (x->sock_err) { /* sock_failed: no answer, the message goes back uncounted */
		snprintf(x->errbuf, sizeof x->errbuf, "cannot watch the connection: %s",
		         strerror(x->sock_err));
		settle(x, CURLE_SEND_ERROR);
		xfer_free(x);
		return;
	}
	if (spool_msg_tick(x->m, &e) != 0)
		logmsg(LOG_WARNING, "%s: %s", x->w.c->queue, e.msg);
	loop_timer_set(x->r->loop, &x->tick, spool_msg_next_tick(x->m));
}

/* Full jitter: uniformly in [0, min(cap, first * 2^(n-1))], at least floor. */
static int64_t
jitter(const struct spool_config *cfg, int n, int64_t floor)
{
	int64_t d = cfg->backoff_first > 0 ? cfg->backoff_first : 1000;
	for (int i = 1; i < n && d < cfg->backoff_cap; i++)
		d = d > cfg->backoff_cap / 2 ? cfg->backoff_cap : d * 2;
	if (cfg->backoff_cap > 0 && d > cfg->backoff_cap)
		d = cfg->backoff_cap;
	int64_t j = (int64_t)((double)d * ((double)random() / ((double)RAND_MAX + 1.0)));
	return j < floor ? floor : j;
}

static void
latency(struct fwd *f, const char *id)
{
	double s = (double)(spool_now() - spool_id_time(id)) / 1000.0;
	size_t b = 0;
	while (b < LAT_NB && s > lat_le[b])
		b++;
	f->lat[b]++;
	f->lat_sum += s < 0 ? 0 : s;
}

static void
settle(struct xfer *x, CURLcode res)
{
	struct relayd *r = x->r;
	struct consumer *c = x->w.c;
	struct fwd *f = c->fwd;
	struct spool_err e = {0};
	long status = 0;
	char id[32], why[300], st[32];
	snprintf(id, sizeof id, "%s", spool_msg_id(x->m));
	curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
	x->resp[strcspn(x->resp, "\r\n")] = '\0';
	const struct spool_config *cfg = spool_queue_config(x->w.q);
	int64_t floor = x->retry_after * 1000;
	struct spool_verdict v = {.what = SPOOL_DO_DEFER};
	bool peer_down = false;

	f->by_status[res == CURLE_OK && status >= 100 && status < 600 ? status / 100 : 0]++;
	if (res != CURLE_OK) {
		snprintf(why, sizeof why, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
		snprintf(st, sizeof st, "curl %d", (int)res);
		peer_down = true;
	} else {
		snprintf(st, sizeof st, "HTTP %ld", status);
		snprintf(why, sizeof why, "HTTP %ld: %s", status, x->resp[0] ? x->resp : "(no text)");
		if (status == 200 || status == 201) {
			v.what = SPOOL_DO_ACK;
		} else if (status == 401 || status == 403) {
			f->paused = true;
			c->rest_until = spool_now() + PAUSE_FOR;
			logmsg(LOG_ERR,
			       "forward %s -> %s: %s: PAUSED (check token-file, then SIGHUP; trying again in %ds)",
			       c->queue, f->peer, why, PAUSE_FOR / 1000);
		} else if (status == 408 || status == 429 || status == 502 || status == 503 ||
		           status == 504 || status == 507) {
			peer_down = true;
		} else if (status == 508) { /* a loop: it can never succeed; NOLINT(bugprone-branch-clone) */
			/* buried as by the else below, but ahead of the 5xx retry */
			v.what = SPOOL_DO_BURY;
			v.reason = why;
			v.status = st;
		} else if (status >= 500 || status < 400) { /* 1xx, 3xx, other 2xx: not "durable" */
			v.what = SPOOL_DO_RETRY;
			v.delay = jitter(cfg, (int)spool_msg_attempt(x->m), floor);
			v.status = why;
		} else {
			v.what = SPOOL_DO_BURY;
			v.reason = why;
			v.status = st;
		}
	}
	if (peer_down && x->epoch == f->epoch && c->running > 1 &&
	    (res == CURLE_RECV_ERROR || res == CURLE_GOT_NOTHING || res == CURLE_SEND_ERROR)) {
		/* a connection taken and then closed unanswered, with others in
		 * flight: most likely turned away by a limit (the peer's
		 * max-per-address, a proxy's), not a peer gone, whose connects
		 * fail.  Halve the transfers in flight, AIMD as TCP does, and go
		 * on at once; they grow back by one for each width's worth of
		 * acks, up to concurrency.  A peer that resets everything is
		 * halved down to one transfer, and then rests as below. */
		f->epoch++;
		long w = consumer_width(c) / 2;
		c->width = w < 1 ? 1 : w;
		f->credit = 0;
		/* said when it is the lowest yet (a sawtooth about the peer's
		 * limit would say it every few seconds) */
		logmsg(f->low_width && c->width >= f->low_width ? LOG_DEBUG : LOG_WARNING,
		       "forward %s -> %s: %s beside transfers the peer answers: "
		       "%ld transfers at once from now (of concurrency %ld)", c->queue, f->peer, why,
		       c->width, c->concurrency);
		if (!f->low_width || c->width < f->low_width)
			f->low_width = c->width;
	} else if (peer_down && x->epoch == f->epoch) {
		/* one failure per rest: the transfers in flight beside this one
		 * met the same peer, and failing too they say nothing new (64 of
		 * them refused at once by a connection limit made a rest of half
		 * an hour from one of a second).  After it, all of concurrency
		 * again: a peer that comes back may take more than it did. */
		f->fails++;
		f->epoch++;
		c->width = 0;
		int64_t rest = jitter(cfg, f->fails, floor);
		if (spool_now() + rest > c->rest_until)
			c->rest_until = spool_now() + rest;
		if (f->fails == 1 || f->fails % 10 == 0)
			logmsg(LOG_WARNING, "forward %s -> %s: %s: the peer cannot take messages now (%d in a row): "
			       "retrying in %.1fs, attempts not counted", c->queue, f->peer, why, f->fails,
			       (double)rest / 1000);
	} else if (peer_down && spool_now() + floor > c->rest_until) { /* its Retry-After still holds */
		c->rest_until = spool_now() + floor;
	}
	snprintf(f->last_error, sizeof f->last_error, "%.255s", v.what == SPOOL_DO_ACK ? "" : why);
	enum spool_outcome oc;
	if (spool_settle(x->m, &v, &oc, &e) != 0) {
		logmsg(LOG_ERR, "%s: %s: %s", c->queue, id, e.msg);
	} else {
		switch (oc) {
		case SPOOL_ACKED:
			if (f->fails || f->paused)
				logmsg(LOG_INFO, "forward %s -> %s: the peer takes messages again", c->queue, f->peer);
			f->fails = 0;
			f->paused = false;
			if (c->width && ++f->credit >= c->width) { /* a width's worth taken: one more */
				f->credit = 0;
				if (++c->width >= c->concurrency)
					c->width = 0;
			}
			f->forwarded++;
			r->n.forwarded++;
			latency(f, id);
			logmsg(LOG_DEBUG, "%s: %s: forwarded (%s)", c->queue, id, st);
			break;
		case SPOOL_RETRY:
			if (v.what == SPOOL_DO_RETRY) {
				f->retried++;
				r->n.retried++;
				logmsg(LOG_WARNING, "%s: %s: forward failed (%s, attempt %u): retrying", c->queue, id,
				       why, spool_msg_attempt(x->m));
			}
			break;
		case SPOOL_BURIED:
			f->dead++;
			r->n.dead++;
			logmsg(LOG_WARNING, "%s: %s: forward failed (%s): dead letter", c->queue, id, why);
			break;
		case SPOOL_LOST:
			logmsg(LOG_WARNING, "%s: %s: lease lost during the transfer (%s)", c->queue, id, st);
			break;
		}
	}
	consumer_poke(r, c, c->rest_until);
}

static void
check_done(struct fwd_multi *fm)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(fm->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		struct xfer *x = NULL;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode res = msg->data.result;
		settle(x, res);
		xfer_free(x);
	}
}

/* The message file cannot be opened or read (EIO, EMFILE, a mode that
 * shuts us out): a counted retry after a backoff, towards dead/ past
 * max-attempts.  Left claimed, it would wait for the next rescan.  One
 * whose header block does not end is buried: no peer would take it (400). */
static void
unreadable(struct xfer *x, int err, const char *msg)
{
	struct consumer *c = x->w.c;
	struct spool_err e = {0};
	char why[300];
	enum spool_outcome oc;
	snprintf(why, sizeof why, "cannot read %s: %s", spool_msg_path(x->m), spool_strerror(err));
	logmsg(LOG_ERR, "%s: %s: %s", c->queue, spool_msg_id(x->m), why);
	struct spool_verdict v = {
		.what = SPOOL_DO_RETRY,
		.delay = jitter(spool_queue_config(x->w.q), (int)spool_msg_attempt(x->m), 0),
		.status = why,
	};
	if (err == EBADMSG) {
		snprintf(why, sizeof why, "%.299s", msg);
		v = (struct spool_verdict){.what = SPOOL_DO_BURY, .reason = why, .status = "unsendable"};
	}
	if (spool_settle(x->m, &v, &oc, &e) != 0)
		logmsg(LOG_ERR, "%s: %s: %s", c->queue, spool_msg_id(x->m), e.msg);
	consumer_poke(x->r, c, c->rest_until);
}

void
forward_start(struct relayd *r, struct consumer *c, spool_msg *m)
{
	struct fwd_multi *fm = multi_get(r);
	struct fwd *f = c->fwd;
	struct spool_err e = {0};
	struct xfer *x = calloc(1, sizeof *x);
	char line[600];
	if (!x || !fm) {
		free(x);
		spool_release(m, &e);
		spool_msg_free(m);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	x->r = r;
	x->m = m;
	x->epoch = f->epoch;
	/* the file as the claim read it: one open and one read a message,
	 * shared with the ack (which reads the header block for Order-Key) */
	x->size = spool_msg_file(m, &x->body, &x->fd, &e);
	loop_timer_init(&x->tick, on_tick, x);
	work_add(r, &x->w, c);
	if (x->size < 0 || (!x->body && x->size <= BODY_INLINE && read_whole(x) != 0)) {
		unreadable(x, errno, e.msg);
		xfer_free(x);
		return;
	}
	if (!(x->h = curl_easy_init())) {
		spool_release(m, &e);
		xfer_free(x);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	snprintf(line, sizeof line, "%s/v1/queues/%s/messages/%s", c->url, c->to, spool_msg_id(m));
	curl_easy_setopt(x->h, CURLOPT_URL, line);
	if (x->body) {
		/* in the same send as the request head (libcurl does that for
		 * bodies under 64 KiB given this way): one write and one segment
		 * a message, where a read callback costs a second of each */
		curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PUT");
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->body);
		curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->size);
	} else {
		curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(x->h, CURLOPT_READFUNCTION, read_body);
		curl_easy_setopt(x->h, CURLOPT_READDATA, x);
		curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->size);
	}
	curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, keep_answer);
	curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, header_line);
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT);
	curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled peer: give up after 60 s */
	curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, 60L);
	if (c->timeout)
		curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)c->timeout);
	curl_easy_setopt(x->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->h, CURLOPT_USERAGENT, "mq-relayd/" SPOOL_VERSION);
	if (c->tls_ca)
		curl_easy_setopt(x->h, CURLOPT_CAINFO, c->tls_ca);
	if (c->tls_cert) {
		curl_easy_setopt(x->h, CURLOPT_SSLCERT, c->tls_cert);
		curl_easy_setopt(x->h, CURLOPT_SSLKEY, c->tls_key);
	}
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/vnd.spoolmq.message");
	if (x->size < EXPECT_MIN)
		h = curl_slist_append(h, "Expect:"); /* small: one round trip, not two */
	if (f->token) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", f->token);
		h = curl_slist_append(h, line);
	}
	snprintf(line, sizeof line, "Mq-Relay: %s", r->name); /* the receiver's Hop before its own */
	h = curl_slist_append(h, line);
	if (x->size <= DIGEST_MAX && digest_file(x->fd, x->size, x->body, line, sizeof line) == 0)
		h = curl_slist_append(h, line);
	x->hdrs = h;
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, h);
	if (!h || curl_multi_add_handle(fm->multi, x->h) != CURLM_OK) {
		curl_easy_cleanup(x->h);
		x->h = NULL;
		spool_release(m, &e);
		xfer_free(x);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return;
	}
	loop_timer_set(r->loop, &x->tick, spool_msg_next_tick(m));
	if (c->running > f->inflight_peak)
		f->inflight_peak = c->running;
	logmsg(LOG_DEBUG, "%s: %s: forwarding to %s (attempt %u, %lld bytes)", c->queue,
	       spool_msg_id(m), f->peer, spool_msg_attempt(m), (long long)x->size);
}

/* ---- set-up, reload, shutdown ---- */

static void
on_stop(void *arg)
{
	struct fwd_multi *fm = arg;
	struct relayd *r = fm->r;
	struct spool_err e = {0};
	/* stop-timeout: what is still in flight goes back, uncounted (a peer
	 * that did store it answers 200 to the retry) */
	for (struct work *w = r->work, *next; w; w = next) {
		next = w->next;
		if (w->c->kind != CONSUME_FORWARD)
			continue;
		struct xfer *x = (struct xfer *)w;
		logmsg(LOG_WARNING, "%s: %s: transfer still running at shutdown: given back",
		       w->c->queue, spool_msg_id(x->m));
		spool_release(x->m, &e);
		xfer_free(x);
	}
}

static struct fwd_multi *
multi_get(struct relayd *r)
{
	if (r->fm)
		return r->fm;
	struct fwd_multi *fm = calloc(1, sizeof *fm);
	if (!fm)
		return NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(fm->multi = curl_multi_init())) {
		free(fm);
		return NULL;
	}
	fm->r = r;
	loop_timer_init(&fm->timer, on_timer, fm);
	loop_timer_init(&fm->stop_timer, on_stop, fm);
	curl_multi_setopt(fm->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(fm->multi, CURLMOPT_SOCKETDATA, fm);
	curl_multi_setopt(fm->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(fm->multi, CURLMOPT_TIMERDATA, fm);
	r->fm = fm;
	return fm;
}

int
forward_init(struct relayd *r, struct consumer *c, struct spool_err *e)
{
	(void)r;
	struct fwd *f = calloc(1, sizeof *f);
	if (!f)
		return spool_fail(e, EX_OSERR, "out of memory");
	c->fwd = f;
	/* the URL as logs and metrics show it: no user:password@ */
	const char *u = c->url, *at = strchr(u, '@'), *host = strstr(u, "://");
	host = host ? host + 3 : u;
	if (at && at > host && !memchr(host, '/', (size_t)(at - host)))
		f->peer = (asprintf(&f->peer, "%.*s%s", (int)(host - u), u, at + 1) < 0) ? NULL : f->peer;
	else
		f->peer = strdup(u);
	if (!f->peer)
		return spool_fail(e, EX_OSERR, "out of memory");
	for (char *p = f->peer; *p; p++) /* it is a label value in /metrics */
		if (*p == '"' || *p == '\\')
			*p = '_';
	if (c->token_file) {
		FILE *fp = conf_fopen(c->token_file);
		if (!fp)
			return spool_fail(e, EX_CONFIG, "forward %s: token-file %s: %s", c->queue,
			                  c->token_file, spool_strerror(errno));
		const char *why = token_first(fp, &f->token);
		fclose(fp);
		if (why)
			return spool_fail(e, EX_CONFIG, "forward %s: token-file %s: %s", c->queue,
			                  c->token_file, why);
	}
	return 0;
}

int
forward_check(struct consumer *c, struct spool_err *e)
{
	int rc = forward_init(NULL, c, e);
	forward_free(NULL, c);
	return rc;
}

void
forward_adopt(struct relayd *r, struct consumer *from, struct consumer *to)
{
	(void)r;
	if (!from->fwd || !to->fwd)
		return;
	struct fwd *o = from->fwd, *n = to->fwd;
	/* counters go on; a pause ends (the token may be new), the backoff too */
	memcpy(n->by_status, o->by_status, sizeof n->by_status);
	memcpy(n->lat, o->lat, sizeof n->lat);
	n->lat_sum = o->lat_sum;
	n->forwarded = o->forwarded, n->retried = o->retried, n->dead = o->dead;
	n->inflight_peak = o->inflight_peak;
}

void
forward_free(struct relayd *r, struct consumer *c)
{
	(void)r;
	if (!c->fwd)
		return;
	if (c->fwd->token)
		memset(c->fwd->token, 0, strlen(c->fwd->token));
	free(c->fwd->token);
	free(c->fwd->peer);
	free(c->fwd);
	c->fwd = NULL;
}

void
forward_stop_all(struct relayd *r)
{
	if (r->fm)
		loop_timer_set(r->loop, &r->fm->stop_timer, r->stop_deadline);
}

void
forward_shutdown(struct relayd *r)
{
	struct fwd_multi *fm = r->fm;
	if (!fm)
		return;
	on_stop(fm);
	loop_timer_set(r->loop, &fm->timer, 0);
	loop_timer_set(r->loop, &fm->stop_timer, 0);
	curl_multi_cleanup(fm->multi);
	curl_global_cleanup();
	free(fm);
	r->fm = NULL;
}

/* ---- what /v1/stats and /metrics show ---- */

void *
forward_state_json(const struct consumer *c)
{
	const struct fwd *f = c->fwd;
	const char *state = f->paused ? "paused" : f->fails ? "retrying" : c->running ? "sending" : "idle";
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s?, s:I, s:I, s:I}", "queue", c->queue, "peer",
	                 f->peer, "to", c->to, "state", state, "in_flight", (json_int_t)c->running,
	                 "failures_in_a_row", (json_int_t)f->fails, "width", (json_int_t)consumer_width(c), "last_error",
	                 f->last_error[0] ? f->last_error : NULL, "forwarded", (json_int_t)f->forwarded,
	                 "retried", (json_int_t)f->retried, "dead_lettered", (json_int_t)f->dead);
}

void
forward_metrics(struct relayd *r, void *out)
{
	FILE *o = out;
	static const char *cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
	fputs("# HELP spoolmq_forward_requests_total Requests to each peer by answer class (none: no answer).\n"
	      "# TYPE spoolmq_forward_requests_total counter\n", o);
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		if (c->kind == CONSUME_FORWARD && c->fwd && !c->retired)
			for (int k = 0; k < 6; k++)
				fprintf(o, "spoolmq_forward_requests_total{queue=\"%s\",peer=\"%s\",status=\"%s\"} %lld\n",
				        c->queue, c->fwd->peer, cls[k], c->fwd->by_status[k]);
	fputs("# HELP spoolmq_forward_in_flight Transfers in flight.\n"
	      "# TYPE spoolmq_forward_in_flight gauge\n", o);
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		if (c->kind == CONSUME_FORWARD && c->fwd && !c->retired)
			fprintf(o, "spoolmq_forward_in_flight{queue=\"%s\",peer=\"%s\"} %ld\n", c->queue,
			        c->fwd->peer, c->running);
	fputs("# HELP spoolmq_forward_paused 1 while a forward is paused by 401 or 403.\n"
	      "# TYPE spoolmq_forward_paused gauge\n", o);
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		if (c->kind == CONSUME_FORWARD && c->fwd && !c->retired)
			fprintf(o, "spoolmq_forward_paused{queue=\"%s\",peer=\"%s\"} %d\n", c->queue,
			        c->fwd->peer, c->fwd->paused);
	fputs("# HELP spoolmq_forward_latency_seconds From a message's send to its forward being acked.\n"
	      "# TYPE spoolmq_forward_latency_seconds histogram\n", o);
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (c->kind != CONSUME_FORWARD || !c->fwd || c->retired)
			continue;
		long long cum = 0;
		for (int b = 0; b <= LAT_NB; b++) {
			cum += c->fwd->lat[b];
			if (b < LAT_NB)
				fprintf(o, "spoolmq_forward_latency_seconds_bucket{queue=\"%s\",peer=\"%s\",le=\"%g\"} %lld\n",
				        c->queue, c->fwd->peer, lat_le[b], cum);
			else
				fprintf(o, "spoolmq_forward_latency_seconds_bucket{queue=\"%s\",peer=\"%s\",le=\"+Inf\"} %lld\n",
				        c->queue, c->fwd->peer, cum);
		}
		fprintf(o, "spoolmq_forward_latency_seconds_sum{queue=\"%s\",peer=\"%s\"} %.6f\n", c->queue,
		        c->fwd->peer, c->fwd->lat_sum);
		fprintf(o, "spoolmq_forward_latency_seconds_count{queue=\"%s\",peer=\"%s\"} %lld\n", c->queue,
		        c->fwd->peer, cum);
	}
}
