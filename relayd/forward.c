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
 *
 * What one dispatch claims together (a backlog) goes together: up to
 * `batch` small messages in one POST /v1/queues/Q/batch (PROTOCOL.md 4a),
 * whose answer has a status for each, settled as a PUT's answer would be.
 * One message alone, a large one, or a peer whose answer to a batch is
 * not about its messages (404 or 405 from one that predates batches, a
 * proxy's 413, a 201 for the whole body): a PUT each, as before; a 4xx of
 * a whole batch never buries its messages (batch_status_applies).
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
#define BATCH_BYTES (1 << 20) /* a batch's body at most about this */
#define ANSWER_MAX (1 << 20)  /* of a batch's answer, what is kept */

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
	bool no_batch;          /* the peer takes no batches (batch_finish): PUT each */
	struct batch *open;     /* being gathered by this dispatch */
	char last_error[256];
	long long by_status[6]; /* answers by class (0: no answer) */
	long long forwarded, retried, dead, inflight_peak;
	long long batches;      /* batch requests sent */
	long long lat[LAT_NB + 1];
	double lat_sum;
};

struct batch;

struct xfer {
	struct work w;          /* first: the daemon's list of deliveries */
	struct relayd *r;
	spool_msg *m;
	CURL *h;                /* its own transfer; NULL in a batch */
	struct batch *b;        /* the batch it goes in, or NULL */
	long status;            /* in a batch: the status of its line (0: none) */
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

/* Messages sent in one request: its transfer's private pointer is v[0]. */
struct batch {
	CURL *h;
	struct xfer **v;
	size_t n, cap;
	char *body;
	size_t len, room;
	struct curl_slist *hdrs;
	char *resp;             /* the answer, up to ANSWER_MAX */
	size_t resplen, resproom;
	bool cut;               /* a piece of it was dropped: nothing after it is kept */
	long retry_after;
	char errbuf[CURL_ERROR_SIZE];
};

static struct fwd_multi *multi_get(struct relayd *r);
static void batch_finish(struct batch *b, CURLcode res);

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

/* An answer's header line: its Retry-After into *arg (a long). */
static size_t
header_line(char *p, size_t size, size_t n, void *arg)
{
	long *ra = arg;
	size_t len = size * n;
	long s = retry_after(p, len);
	if (s >= 0)
		*ra = s;
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

static void settle(struct xfer *x, CURLcode res, long status);

static void
on_tick(void *arg)
{
	struct xfer *x = arg;
	struct spool_err e = {0};
	if (x->sock_err) { /* sock_failed: no answer, the message goes back uncounted */
		char *eb = x->b ? x->b->errbuf : x->errbuf;
		snprintf(eb, CURL_ERROR_SIZE, "cannot watch the connection: %s", strerror(x->sock_err));
		if (x->b) {
			batch_finish(x->b, CURLE_SEND_ERROR);
			return;
		}
		settle(x, CURLE_SEND_ERROR, 0);
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

/* The answer (res; status, x->resp, x->retry_after, x->errbuf) settles x. */
static void
settle(struct xfer *x, CURLcode res, long status)
{
	struct relayd *r = x->r;
	struct consumer *c = x->w.c;
	struct fwd *f = c->fwd;
	struct spool_err e = {0};
	char id[32], why[300], st[32];
	snprintf(id, sizeof id, "%s", spool_msg_id(x->m));
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
	if (peer_down && x->epoch == f->epoch && c->running > (long)(x->b ? x->b->n : 1) &&
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
		long status = 0;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		CURLcode res = msg->data.result;
		if (x->b) {
			batch_finish(x->b, res);
			continue;
		}
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
		settle(x, res, status);
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

/* A transfer with what every request to c's peer has; NULL when libcurl
 * cannot make one.  The caller sets the method, the body and the answer's
 * callbacks. */
static CURL *
easy_new(struct relayd *r, struct consumer *c, const char *url, struct curl_slist **hdrs,
         const char *type, bool expect)
{
	struct fwd *f = c->fwd;
	char line[600];
	CURL *h = curl_easy_init();
	if (!h)
		return NULL;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled peer: give up after 60 s */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	if (c->timeout)
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mq-relayd/" SPOOL_VERSION);
	if (c->tls_ca)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->tls_ca);
	if (c->tls_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls_key);
	}
	snprintf(line, sizeof line, "Content-Type: %s", type);
	struct curl_slist *l = curl_slist_append(NULL, line);
	if (!expect)
		l = curl_slist_append(l, "Expect:"); /* small: one round trip, not two */
	if (f->token) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", f->token);
		l = curl_slist_append(l, line);
	}
	snprintf(line, sizeof line, "Mq-Relay: %s", r->name); /* the receiver's Hop before its own */
	l = curl_slist_append(l, line);
	*hdrs = l;
	if (!l) {
		curl_easy_cleanup(h);
		return NULL;
	}
	return h;
}

/* A message claimed for c, read, its lease ticking; NULL when it could
 * not be (then settled or given back already). */
static struct xfer *
xfer_new(struct relayd *r, struct consumer *c, spool_msg *m)
{
	struct spool_err e = {0};
	struct xfer *x = calloc(1, sizeof *x);
	if (!x || !multi_get(r)) {
		free(x);
		spool_release(m, &e);
		spool_msg_free(m);
		c->rest_until = spool_now() + ERROR_BACKOFF;
		return NULL;
	}
	x->r = r;
	x->m = m;
	x->epoch = c->fwd->epoch;
	/* the file as the claim read it: one open and one read a message,
	 * shared with the ack (which reads the header block for Order-Key) */
	x->size = spool_msg_file(m, &x->body, &x->fd, &e);
	loop_timer_init(&x->tick, on_tick, x);
	work_add(r, &x->w, c);
	if (x->size < 0 || (!x->body && x->size <= BODY_INLINE && read_whole(x) != 0)) {
		unreadable(x, errno, e.msg);
		xfer_free(x);
		return NULL;
	}
	loop_timer_set(r->loop, &x->tick, spool_msg_next_tick(m));
	return x;
}

/* x could not be sent: back to the queue, uncounted, and the forward rests. */
static void
give_back(struct xfer *x)
{
	struct consumer *c = x->w.c;
	struct spool_err e = {0};
	spool_release(x->m, &e);
	xfer_free(x);
	c->rest_until = spool_now() + ERROR_BACKOFF;
}

/* x by a PUT of its own. */
static void
xfer_send(struct xfer *x)
{
	struct relayd *r = x->r;
	struct consumer *c = x->w.c;
	struct fwd *f = c->fwd;
	spool_msg *m = x->m;
	char line[600];
	snprintf(line, sizeof line, "%s/v1/queues/%s/messages/%s", c->url, c->to, spool_msg_id(m));
	if (!(x->h = easy_new(r, c, line, &x->hdrs, "application/vnd.spoolmq.message", x->size >= EXPECT_MIN))) {
		give_back(x);
		return;
	}
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
	curl_easy_setopt(x->h, CURLOPT_HEADERDATA, &x->retry_after);
	curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
	if (x->size <= DIGEST_MAX && digest_file(x->fd, x->size, x->body, line, sizeof line) == 0) {
		struct curl_slist *h = curl_slist_append(x->hdrs, line);
		if (h)
			x->hdrs = h;
	}
	curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
	if (curl_multi_add_handle(r->fm->multi, x->h) != CURLM_OK) {
		curl_easy_cleanup(x->h);
		x->h = NULL;
		give_back(x);
		return;
	}
	if (c->running > f->inflight_peak)
		f->inflight_peak = c->running;
	logmsg(LOG_DEBUG, "%s: %s: forwarding to %s (attempt %u, %lld bytes)", c->queue,
	       spool_msg_id(m), f->peer, spool_msg_attempt(m), (long long)x->size);
}

/* ---- batches ---- */

static void
batch_free(struct relayd *r, struct batch *b)
{
	if (b->h) {
		curl_multi_remove_handle(r->fm->multi, b->h);
		curl_easy_cleanup(b->h);
	}
	curl_slist_free_all(b->hdrs);
	free(b->body);
	free(b->resp);
	free(b->v);
	free(b);
}

static int
batch_grow(struct batch *b, size_t more)
{
	if (b->body && b->len + more <= b->room)
		return 0;
	size_t room = b->room ? b->room : 16384;
	while (room < b->len + more)
		room *= 2;
	char *p = realloc(b->body, room);
	if (!p)
		return -1;
	b->body = p, b->room = room;
	return 0;
}

/* x's frame, "ID SIZE DIGEST\n" and the file, onto b's body. */
static int
batch_add(struct batch *b, struct xfer *x)
{
	char head[200], dig[160];
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct xfer **v = realloc(b->v, cap * sizeof *v); /* NOLINT(bugprone-sizeof-expression): of pointers */
		if (!v)
			return -1;
		b->v = v, b->cap = cap;
	}
	if (digest_file(x->fd, x->size, x->body, dig, sizeof dig) != 0)
		return -1;
	/* "Content-Digest: sha-256=:B64:": the value is the frame's digest */
	int k = snprintf(head, sizeof head, "%s %lld %s\n", spool_msg_id(x->m), (long long)x->size,
	                 dig + strlen("Content-Digest: "));
	if (k < 0 || (size_t)k >= sizeof head || batch_grow(b, (size_t)k + (size_t)x->size) != 0)
		return -1;
	memcpy(b->body + b->len, head, (size_t)k);
	memcpy(b->body + b->len + k, x->body, (size_t)x->size);
	b->len += (size_t)k + (size_t)x->size;
	b->v[b->n++] = x;
	x->b = b;
	return 0;
}

static size_t
keep_batch_answer(char *p, size_t size, size_t n, void *arg)
{
	struct batch *b = arg;
	size_t len = size * n;
	if (b->cut)
		return len;
	if (b->resplen + len + 1 > b->resproom && b->resplen + len < ANSWER_MAX) {
		size_t room = b->resproom ? b->resproom : 4096;
		while (room < b->resplen + len + 1)
			room *= 2;
		char *q = realloc(b->resp, room);
		if (!q) {
			b->cut = true; /* what is kept is answered; the rest goes back */
			return len;
		}
		b->resp = q, b->resproom = room;
	}
	if (b->resplen + len + 1 <= b->resproom) {
		memcpy(b->resp + b->resplen, p, len);
		b->resplen += len;
		b->resp[b->resplen] = '\0';
	} else {
		b->cut = true; /* a later piece after a gap would splice two lines */
	}
	return len;
}

/* b is done with: freed, then each member, on its own again, to each(). */
static void
batch_dissolve(struct relayd *r, struct batch *b, void (*each)(struct xfer *))
{
	struct xfer **v = b->v;
	size_t n = b->n;
	b->v = NULL, b->n = 0;
	batch_free(r, b);
	for (size_t i = 0; i < n; i++) {
		v[i]->b = NULL;
		each(v[i]);
	}
	free(v);
}

/* Each member by a PUT of its own. */
static void
batch_unbundle(struct relayd *r, struct batch *b)
{
	batch_dissolve(r, b, xfer_send);
}

/* b could not be sent: each member back to the queue, uncounted. */
static void
batch_give_back(struct relayd *r, struct batch *b)
{
	batch_dissolve(r, b, give_back);
}

static void
batch_send(struct relayd *r, struct consumer *c, struct batch *b)
{
	struct fwd *f = c->fwd;
	char url[600];
	snprintf(url, sizeof url, "%s/v1/queues/%s/batch", c->url, c->to);
	if (!(b->h = easy_new(r, c, url, &b->hdrs, "application/vnd.spoolmq.batch", false))) {
		batch_give_back(r, b);
		return;
	}
	curl_easy_setopt(b->h, CURLOPT_POSTFIELDS, b->body);
	curl_easy_setopt(b->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
	curl_easy_setopt(b->h, CURLOPT_WRITEFUNCTION, keep_batch_answer);
	curl_easy_setopt(b->h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(b->h, CURLOPT_HEADERFUNCTION, header_line);
	curl_easy_setopt(b->h, CURLOPT_HEADERDATA, &b->retry_after);
	curl_easy_setopt(b->h, CURLOPT_ERRORBUFFER, b->errbuf);
	curl_easy_setopt(b->h, CURLOPT_PRIVATE, b->v[0]);
	curl_easy_setopt(b->h, CURLOPT_HTTPHEADER, b->hdrs);
	if (curl_multi_add_handle(r->fm->multi, b->h) != CURLM_OK) {
		curl_easy_cleanup(b->h);
		b->h = NULL;
		batch_give_back(r, b);
		return;
	}
	if (c->running > f->inflight_peak)
		f->inflight_peak = c->running;
	f->batches++;
	logmsg(LOG_DEBUG, "%s: forwarding %zu messages to %s in one batch (%zu bytes)", c->queue, b->n,
	       f->peer, b->len);
}

/* Whether a batch's status (not 200) says what a PUT's would about each
 * of its messages: the peer cannot take messages now (408, 429, 5xx but
 * 501 and 505), or the token (401, 403).  Anything else is about the
 * request, not the messages. */
static bool
batch_status_applies(long status)
{
	return status == 200 || status == 401 || status == 403 || status == 408 || status == 429 ||
	       (status >= 500 && status <= 599 && status != 501 && status != 505);
}

/* b's answer is in: settle each member by its line, or all by the
 * request's status when it is not 200. */
static void
batch_finish(struct batch *b, CURLcode res)
{
	struct xfer *x0 = b->v[0];
	struct relayd *r = x0->r;
	struct fwd *f = x0->w.c->fwd;
	long status = 0;
	if (b->h)
		curl_easy_getinfo(b->h, CURLINFO_RESPONSE_CODE, &status);
	size_t next = 0, answered = 0;
	if (res == CURLE_OK && status == 200 && b->resp) {
		for (char *p = b->resp, *nl; *p; p = nl ? nl + 1 : p + strlen(p)) {
			nl = strchr(p, '\n');
			size_t len = nl ? (size_t)(nl - p) : strlen(p);
			char id[40];
			const char *text;
			size_t tlen;
			int st = batch_result(p, len, id, sizeof id, &text, &tlen);
			if (st < 0 || !nl) /* a line cut short is no answer */
				continue;
			/* in the order sent, unless the peer says otherwise */
			size_t i = next < b->n && strcmp(spool_msg_id(b->v[next]->m), id) == 0 ? next : b->n;
			for (size_t j = 0; i == b->n && j < b->n; j++)
				if (strcmp(spool_msg_id(b->v[j]->m), id) == 0)
					i = j;
			if (i == b->n || b->v[i]->status)
				continue;
			struct xfer *x = b->v[i];
			x->status = st;
			snprintf(x->resp, sizeof x->resp, "%.*s", (int)(tlen < sizeof x->resp ? tlen : sizeof x->resp - 1), text);
			x->retry_after = b->retry_after;
			next = i + 1;
			answered++;
		}
	}
	if (res == CURLE_OK && (!batch_status_applies(status) || (status == 200 && !answered))) {
		/* not an answer about the messages: a peer that predates batches
		 * (404, 405), a proxy's size limit (413), another program (a 201
		 * or a 200 without a line for any of them would ack messages
		 * nobody answered for).  It takes PUTs: each message goes so,
		 * from now on. */
		if (!f->no_batch)
			logmsg(LOG_WARNING, "forward %s -> %s: the peer takes no batches (HTTP %ld%s): a PUT each from now on",
			       x0->w.c->queue, f->peer, status, status == 200 ? " without a line for any" : "");
		f->no_batch = true;
		batch_unbundle(r, b);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct xfer *x = b->v[i];
		snprintf(x->errbuf, sizeof x->errbuf, "%s", b->errbuf);
		if (res == CURLE_OK && status == 200) {
			if (x->status) {
				settle(x, CURLE_OK, x->status);
			} else { /* no line for it: as no answer */
				snprintf(x->errbuf, sizeof x->errbuf, "the peer's answer to a batch has no line for it");
				settle(x, CURLE_WEIRD_SERVER_REPLY, 0);
			}
		} else {
			const char *a = b->resp ? b->resp : "";
			snprintf(x->resp, sizeof x->resp, "%.*s", (int)strcspn(a, "\r\n"), a);
			x->retry_after = b->retry_after;
			settle(x, res, status);
		}
	}
	batch_dissolve(r, b, xfer_free);
}

void
forward_start(struct relayd *r, struct consumer *c, spool_msg *m)
{
	struct fwd *f = c->fwd;
	struct xfer *x = xfer_new(r, c, m);
	if (!x)
		return;
	if (c->batch < 2 || f->no_batch || !x->body || x->size > BODY_INLINE) {
		xfer_send(x);
		return;
	}
	if (!f->open && !(f->open = calloc(1, sizeof *f->open))) {
		xfer_send(x);
		return;
	}
	if (batch_add(f->open, x) != 0) {
		xfer_send(x);
		return;
	}
	if ((long)f->open->n >= c->batch || f->open->len >= BATCH_BYTES) {
		struct batch *b = f->open;
		f->open = NULL;
		batch_send(r, c, b);
	}
}

void
forward_flush(struct relayd *r, struct consumer *c)
{
	struct fwd *f = c->fwd;
	struct batch *b = f ? f->open : NULL;
	if (!b)
		return;
	f->open = NULL;
	if (b->n == 1) /* one alone: a PUT, as it always was */
		batch_unbundle(r, b);
	else if (b->n)
		batch_send(r, c, b);
	else
		batch_free(r, b);
}

/* ---- set-up, reload, shutdown ---- */

static void
on_stop(void *arg)
{
	struct fwd_multi *fm = arg;
	struct relayd *r = fm->r;
	struct spool_err e = {0};
	/* stop-timeout: what is still in flight goes back, uncounted (a peer
	 * that did store it answers 200 to the retry); a batch's transfer
	 * first, leaving its members to the loop below */
	for (struct work *w = r->work; w; w = w->next) {
		struct xfer *x = (struct xfer *)w;
		if (w->c->kind != CONSUME_FORWARD || !x->b)
			continue;
		struct batch *b = x->b;
		for (size_t i = 0; i < b->n; i++)
			b->v[i]->b = NULL;
		batch_free(r, b);
	}
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
	n->batches = o->batches;
	if (strcmp(o->peer, n->peer) == 0) /* the same peer has not learnt batches by a reload */
		n->no_batch = o->no_batch;
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
	return json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s?, s:I, s:I, s:I, s:I}", "queue", c->queue, "peer",
	                 f->peer, "to", c->to, "state", state, "in_flight", (json_int_t)c->running,
	                 "failures_in_a_row", (json_int_t)f->fails, "width", (json_int_t)consumer_width(c), "last_error",
	                 f->last_error[0] ? f->last_error : NULL, "forwarded", (json_int_t)f->forwarded,
	                 "retried", (json_int_t)f->retried, "dead_lettered", (json_int_t)f->dead, "batches",
	                 (json_int_t)f->batches);
}

void
forward_metrics(struct relayd *r, void *out)
{
	FILE *o = out;
	static const char *cls[6] = {"none", "1xx", "2xx", "3xx", "4xx", "5xx"};
	fputs("# HELP spoolmq_forward_requests_total Messages sent to each peer, by the class of the answer "
	      "that settled each (none: no answer; a batch's lines count one each).\n"
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
