/* SPDX-License-Identifier: MIT */
/*
 * out.c: mq-bridge out QUEUE SUBJECT, a queue drained into a JetStream
 * subject.  Each claimed message is published asynchronously with its id as
 * Nats-Msg-Id (a publish retried after a crash or a lost PubAck is dropped
 * by the stream's duplicate window), its headers as NATS headers and its
 * body as data; up to -n publishes are in flight, and a message is acked
 * in the spool only once the stream's PubAck for it is in hand.
 *
 * The PubAck handler runs on a libnats thread: it only copies the answer
 * into a list and wakes the main thread, which settles (lib/settle.c).  A
 * cluster that cannot take messages now (no answer within -t, no
 * connection, no responders while a stream does take the subject, a
 * JetStream "unavailable" code) gets them again later, uncounted, and the
 * bridge rests for a jittered backoff with one publish in flight until one
 * succeeds: an outage costs no attempts and no dead letters.  An answer
 * that can never succeed (no stream takes the subject; the message over
 * the stream's or the server's size limit; a sealed stream) buries the
 * message with the server's words.  Any other JetStream error counts an
 * attempt, with the queue's backoff, towards max-attempts.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bridge.h"

#define REPAIR_EVERY (60 * 1000) /* ms between repairs (leases of others, tmp/) */
#define LOOKUP_FOR 1000          /* ms a "does a stream take the subject" answer is kept */
#define DEFAULT_TIMEOUT 5000     /* ms: -t, the wait for a PubAck */
#define DRAIN_GRACE 1000         /* ms past -t that a shutdown waits for PubAcks */
#define PAUSE_LOOK 100           /* ms: how stale the view of mq-pause may be (and the watch's event) */

struct flight {
	spool_msg *m;  /* NULL: a free slot */
	int fd;        /* the body's: its close after the ack is the closer's */
	char id[32];
};

/* One PubAck (or its failure), as the handler copied it. */
struct done {
	char id[32];
	bool ok, dup;
	natsStatus err;
	int code;       /* jsErrCode, 0: no answer from JetStream */
	char text[200];
};

struct out {
	struct bridge *b;
	const char *subject;
	spool_queue *q;
	struct flight *fl;
	size_t nfl, inflight;
	int *fds;               /* of the slots just freed, for the closer (nfl of them) */
	size_t nfds;
	char *body;
	size_t bodycap;
	int fails;              /* publishes in a row the cluster could not take */
	int64_t rest_until;
	bool deferred;          /* a message was given back for later (-D: exit 75) */
	int lookup;             /* a stream takes the subject: 1, 0, -1 unknown */
	int64_t lookup_at;
	long long published, dead, retried;
	/* filled by the PubAck handler, under mu */
	pthread_mutex_t mu;
	struct done *dv;
	size_t dn, dcap;
	bool oom;               /* an answer was lost for want of memory: the lease covers it */
};

static void
on_puback(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *arg)
{
	struct out *o = arg;
	struct done d = {.ok = pa != NULL};
	const char *id = NULL;
	(void)js;
	if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id)
		snprintf(d.id, sizeof d.id, "%s", id);
	if (pa) {
		d.dup = pa->Duplicate;
	} else if (pae) {
		d.err = pae->Err;
		d.code = (int)pae->ErrCode;
		snprintf(d.text, sizeof d.text, "%s",
		         pae->ErrText && *pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err));
	}
	natsMsg_Destroy(msg);
	pthread_mutex_lock(&o->mu);
	if (o->dn == o->dcap) {
		size_t cap = o->dcap ? o->dcap * 2 : 256;
		struct done *v = realloc(o->dv, cap * sizeof *v);
		if (v)
			o->dv = v, o->dcap = cap;
	}
	bool first = o->dn == 0; /* the main thread is woken once per batch of answers */
	if (o->dn < o->dcap)
		o->dv[o->dn++] = d;
	else
		o->oom = true;
	pthread_mutex_unlock(&o->mu);
	if (first)
		bridge_wake(o->b);
}

/* ---- does a stream take the subject (after "no responders") ---- */

static int
stream_takes(struct out *o)
{
	int64_t now = spool_now();
	if (o->lookup_at && now - o->lookup_at < LOOKUP_FOR)
		return o->lookup;
	o->lookup_at = now;
	o->lookup = -1;
	char req[600];
	natsMsg *reply = NULL;
	snprintf(req, sizeof req, "{\"subject\":\"%s\"}", o->subject);
	if (natsConnection_RequestString(&reply, o->b->nc, "$JS.API.STREAM.NAMES", req, 2000) != NATS_OK)
		return -1;
	json_t *j = json_loadb(natsMsg_GetData(reply), (size_t)natsMsg_GetDataLength(reply), 0, NULL);
	natsMsg_Destroy(reply);
	if (j && !json_object_get(j, "error") && json_is_integer(json_object_get(j, "total")))
		o->lookup = json_integer_value(json_object_get(j, "total")) > 0;
	json_decref(j);
	return o->lookup;
}

/* ---- settling ---- */

static struct flight *
flight_of(struct out *o, const char *id)
{
	for (size_t i = 0; i < o->nfl; i++)
		if (o->fl[i].m && strcmp(o->fl[i].id, id) == 0)
			return &o->fl[i];
	return NULL;
}

static struct flight *
free_slot(struct out *o)
{
	for (size_t i = 0; i < o->nfl; i++)
		if (!o->fl[i].m)
			return &o->fl[i];
	return NULL;
}

/* The slot is free again; its body's descriptor (the last that holds the
 * file once it is acked) goes to *fds for the closer. */
static void
flight_end(struct out *o, struct flight *f, int *fds, size_t *nfds)
{
	spool_msg_free(f->m); /* not the last close: f->fd holds the file */
	fds[(*nfds)++] = f->fd;
	f->m = NULL;
	f->fd = -1;
	o->inflight--;
}

/* The cluster cannot take messages now: back off, one publish at a time. */
static int64_t
cluster_down(struct out *o, const char *why)
{
	o->fails++;
	int64_t rest = bridge_jitter(o->q, o->fails);
	if (rest < 50)
		rest = 50;
	if (spool_now() + rest > o->rest_until)
		o->rest_until = spool_now() + rest;
	if (o->fails == 1 || o->fails % 10 == 0)
		cli_warn("out %s -> %s: %s: the cluster cannot take messages now (%d in a row): "
		         "retrying in %.1fs, attempts not counted",
		         spool_queue_name(o->q), o->subject, why, o->fails, (double)rest / 1000);
	o->deferred = true;
	return rest;
}

/*
 * What an answer (or its absence) does to a message: code is JetStream's
 * err_code (0 when JetStream did not answer), err the client's status.
 */
static void
verdict_of(struct out *o, natsStatus err, int code, const char *text, struct spool_verdict *v,
           char *why, size_t whylen, char *st, size_t stlen)
{
	memset(v, 0, sizeof *v);
	if (code) {
		snprintf(why, whylen, "JetStream: %s (err_code %d)", text, code);
		snprintf(st, stlen, "nats %d", code);
	} else {
		snprintf(why, whylen, "nats: %s", text);
		snprintf(st, stlen, "nats: %s", natsStatus_GetText(err));
	}
	switch (code) {
	case JSStreamMessageExceedsMaximumErr:
	case JSStreamSealedErr:
		v->what = SPOOL_DO_BURY;
		break;
	case JSClusterNoPeersErr:
	case JSClusterNotAvailErr:
	case JSInsufficientResourcesErr:
	case JSStreamOfflineErr:
	case JSNotEnabledErr:
	case JSNotEnabledForAccountErr:
	case 10077: /* JSStreamStoreFailedF: "maximum messages exceeded" and the like (discard new) */
		v->what = SPOOL_DO_DEFER;
		break;
	case 0:
		if (err == NATS_MAX_PAYLOAD) {
			v->what = SPOOL_DO_BURY;
		} else if (err == NATS_NO_RESPONDERS && stream_takes(o) == 0) {
			snprintf(why, whylen, "nats: %s: no JetStream stream takes subject %s", text, o->subject);
			v->what = SPOOL_DO_BURY;
		} else {
			v->what = SPOOL_DO_DEFER; /* timeout, no connection, leader elections */
		}
		break;
	default:
		v->what = SPOOL_DO_RETRY;
		v->delay = -1;
		break;
	}
	if (v->what == SPOOL_DO_BURY)
		v->reason = why, v->status = st;
	else if (v->what == SPOOL_DO_RETRY)
		v->status = why;
	else
		v->delay = cluster_down(o, why);
}

static void
settle(struct out *o, spool_msg *m, bool ok, natsStatus err, int code, const char *text)
{
	struct spool_verdict v = {.what = SPOOL_DO_ACK};
	struct spool_err e = {0};
	char why[400] = "", st[128] = "";
	enum spool_outcome oc;
	if (!ok)
		verdict_of(o, err, code, text, &v, why, sizeof why, st, sizeof st);
	if (spool_settle(m, &v, &oc, &e) != 0) {
		cli_warn("%s: %s: %s", spool_queue_name(o->q), spool_msg_id(m), e.msg);
		return;
	}
	switch (oc) {
	case SPOOL_ACKED:
		if (o->fails)
			cli_warn("out %s -> %s: the cluster takes messages again", spool_queue_name(o->q),
			         o->subject);
		o->fails = 0;
		o->published++;
		break;
	case SPOOL_RETRY:
		if (v.what == SPOOL_DO_RETRY) {
			o->retried++;
			cli_warn("%s: %s: publish failed (%s, attempt %u): retrying", spool_queue_name(o->q),
			         spool_msg_id(m), why, spool_msg_attempt(m));
		}
		break;
	case SPOOL_BURIED:
		o->dead++;
		cli_warn("%s: %s: publish failed (%s): dead letter", spool_queue_name(o->q), spool_msg_id(m),
		         why);
		break;
	case SPOOL_LOST:
		cli_warn("%s: %s: lease lost while publishing", spool_queue_name(o->q), spool_msg_id(m));
		break;
	}
}

/* The answers the handler has collected, each settled. */
static void
take_answers(struct out *o)
{
	pthread_mutex_lock(&o->mu);
	struct done *v = o->dv;
	size_t n = o->dn;
	o->dv = NULL, o->dn = o->dcap = 0;
	pthread_mutex_unlock(&o->mu);
	for (size_t i = 0; i < n; i++) {
		struct flight *f = flight_of(o, v[i].id);
		if (!f) /* given back at shutdown, or an answer to an earlier life's publish */
			continue;
		settle(o, f->m, v[i].ok, v[i].err, v[i].code, v[i].text);
		flight_end(o, f, o->fds, &o->nfds);
		if (o->nfds == o->nfl) {
			spool_closer_put(o->fds, o->nfds);
			o->nfds = 0;
		}
	}
	spool_closer_put(o->fds, o->nfds);
	o->nfds = 0;
	free(v);
}

/* ---- publishing ---- */

/* The header lines that go as NATS headers: all but Id (it is the
 * Nats-Msg-Id), the Dead-* of an earlier burial, and Nats-* (the server's
 * controls: a message that came in through a bridge must not steer this
 * stream). */
static bool
header_goes(const char *line, size_t namelen)
{
	return !(namelen == 2 && strncasecmp(line, "Id", 2) == 0) && strncasecmp(line, "Dead-", 5) != 0 &&
	       strncasecmp(line, "Nats-", 5) != 0;
}

/* m's NATS message, and the descriptor that holds its file (0), or -1
 * when it cannot be made (m settled here).  Everything that touches the
 * disk is done here for a whole batch before any is published, so that
 * the publishes leave in a burst, as a plain publisher's do: one write
 * and one wake-up of libnats's flusher for many. */
static int
prepare(struct out *o, spool_msg *m, natsMsg **out, int *fdout)
{
	struct spool_err e = {0};
	char err[256];
	natsMsg *nm = NULL;
	natsStatus s;
	int fd = -1;
	int64_t max = o->b->nc ? natsConnection_GetMaxPayload(o->b->nc) : 0;
	size_t len = 0;
	if (max <= 0)
		max = 1 << 20;
	char *const *hdrs = spool_msg_headers(m, &e);
	if (!hdrs || (fd = spool_msg_dup_fd(m, &e)) < 0)
		goto unreadable;
	for (;;) {
		if (len == o->bodycap) {
			size_t cap = o->bodycap ? o->bodycap * 2 : 65536;
			char *p = realloc(o->body, cap);
			if (!p) {
				spool_fail(&e, EX_OSERR, "out of memory");
				goto unreadable;
			}
			o->body = p, o->bodycap = cap;
		}
		ssize_t r = spool_msg_read(m, o->body + len, o->bodycap - len, &e);
		if (r < 0)
			goto unreadable;
		if (r == 0)
			break;
		len += (size_t)r;
		if ((int64_t)len > max) {
			snprintf(err, sizeof err, "body over the server's max_payload of %lld bytes",
			         (long long)max);
			settle(o, m, false, NATS_MAX_PAYLOAD, 0, err);
			spool_msg_free(m);
			close(fd);
			return -1;
		}
	}
	if ((s = natsMsg_Create(&nm, o->subject, NULL, o->body, (int)len)) != NATS_OK)
		goto failed;
	for (char *const *h = hdrs; *h; h++) {
		const char *colon = strchr(*h, ':');
		if (!colon || !header_goes(*h, (size_t)(colon - *h)))
			continue;
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(colon - *h), *h);
		const char *val = colon + 1;
		while (*val == ' ')
			val++;
		if ((s = natsMsgHeader_Add(nm, name, val)) != NATS_OK)
			goto failed;
	}
	*out = nm;
	*fdout = fd;
	return 0;
failed:
	natsMsg_Destroy(nm);
	settle(o, m, false, s, 0, bridge_strerror(s, err, sizeof err));
	spool_msg_free(m);
	close(fd);
	return -1;
unreadable:;
	/* counted, towards dead/ past max-attempts (as mq-relayd's forward) */
	struct spool_verdict v = {.what = SPOOL_DO_RETRY, .delay = -1, .status = e.msg};
	enum spool_outcome oc;
	struct spool_err e2 = {0};
	cli_warn("%s: %s: %s", spool_queue_name(o->q), spool_msg_id(m), e.msg);
	if (spool_settle(m, &v, &oc, &e2) != 0)
		cli_warn("%s: %s: %s", spool_queue_name(o->q), spool_msg_id(m), e2.msg);
	spool_msg_free(m);
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Publish a prepared message; on failure it is settled here. */
static void
publish(struct out *o, spool_msg *m, natsMsg *nm, int fd)
{
	struct flight *f = free_slot(o); /* there is one: the caller keeps within -n */
	char err[256];
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MsgId = spool_msg_id(m);
	po.MaxWait = o->b->timeout;
	/* in the table first: the answer may come before the call returns */
	snprintf(f->id, sizeof f->id, "%s", spool_msg_id(m));
	f->m = m;
	f->fd = fd;
	o->inflight++;
	natsStatus s = js_PublishMsgAsync(o->b->js, &nm, &po);
	if (s == NATS_OK)
		return;
	f->m = NULL;
	f->fd = -1;
	f->id[0] = '\0';
	o->inflight--;
	natsMsg_Destroy(nm);
	settle(o, m, false, s, 0, bridge_strerror(s, err, sizeof err));
	spool_msg_free(m);
	close(fd);
}

static void
tick_leases(struct out *o, int64_t *next)
{
	int64_t now = spool_now();
	struct spool_err e = {0};
	for (size_t i = 0; i < o->nfl; i++) {
		spool_msg *m = o->fl[i].m;
		if (!m)
			continue;
		int64_t t = spool_msg_next_tick(m);
		if (t && t <= now && spool_msg_tick(m, &e) != 0)
			cli_warn("%s: %s: %s", spool_queue_name(o->q), spool_msg_id(m), e.msg);
		t = spool_msg_next_tick(m);
		if (t && (!*next || t < *next))
			*next = t;
	}
}

static bool
subject_ok(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (const char *p = s, *tok = s;; p++) {
		if (*p == '.' || !*p) {
			size_t n = (size_t)(p - tok);
			if (!n || (n == 1 && (*tok == '*' || *tok == '>')))
				return false;
			if (!*p)
				return true;
			tok = p + 1;
		} else if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\') {
			return false;
		}
	}
}

struct watch_arg {
	bool *empty;
	bool *lost;
	bool *pause;
};

static void
on_watch(void *arg, spool_queue *q, enum spool_watch_event ev)
{
	struct watch_arg *wa = arg;
	(void)q;
	if (ev == SPOOL_WATCH_LOST)
		*wa->lost = true;
	if (ev == SPOOL_WATCH_PAUSE)
		*wa->pause = true;
	*wa->empty = false;
}

int
bridge_out(struct bridge *b, const char *queue, const char *subject)
{
	struct spool_err e = {0};
	struct out o = {.b = b, .subject = subject, .lookup = -1};
	if (!subject_ok(subject))
		cli_die(EX_USAGE, "bad subject '%s': want tokens separated by dots, no wildcards or blanks",
		        spool_printable(subject));
	if (!b->timeout)
		b->timeout = DEFAULT_TIMEOUT;
	spool *sp = NULL;
	o.q = cli_queue(&sp, b->dir, queue, CLI_OR_CREATE);
	if (!o.q)
		cli_die(EX_NOINPUT, "queue %s does not exist", queue);
	o.nfl = (size_t)b->window;
	if (!(o.fl = calloc(o.nfl, sizeof *o.fl)) || !(o.fds = calloc(o.nfl, sizeof *o.fds)))
		cli_die(EX_OSERR, "out of memory");
	for (size_t i = 0; i < o.nfl; i++)
		o.fl[i].fd = -1;
	spool_closer_start();
	pthread_mutex_init(&o.mu, NULL);
	spool_watch *w = spool_watch_new(&e);
	if (!w || spool_watch_add(w, o.q, &e) < 0)
		cli_fail(&e);
	/* one holder write a claim, not deferred to a batch: a bridge killed
	 * while it claims leaves at most one claim to its lease */
	spool_queue_hold(o.q);

	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = b->timeout;
	jo.PublishAsync.MaxPending = b->window + 1;
	jo.PublishAsync.AckHandler = on_puback;
	jo.PublishAsync.AckHandlerClosure = &o;
	bridge_connect(b, &jo);

	bool empty = false, lost = false;
	bool paused = false, pause_event = false;
	struct watch_arg wa = {&empty, &lost, &pause_event};
	int64_t start = spool_now(), next_due = 0, next_repair = start, down_since = 0;
	int64_t stop_by = 0, next_tick = 0, pause_look = 0;
	spool_msg **batch = calloc(o.nfl, sizeof(spool_msg *));
	natsMsg **nms = calloc(o.nfl, sizeof(natsMsg *));
	int *fds = calloc(o.nfl, sizeof *fds);
	int rc = EX_DONE;
	if (!batch || !nms || !fds)
		cli_die(EX_OSERR, "out of memory");
	for (;;) {
		int64_t now = spool_now(), wake = now + 1000;
		bridge_events(b);
		take_answers(&o);
		if ((b->stop || lost) && !stop_by)
			stop_by = now + b->timeout + DRAIN_GRACE;
		if (stop_by && (!o.inflight || now >= stop_by))
			break;
		if (b->connected)
			down_since = 0;
		else if (!down_since)
			down_since = now;
		if (b->drain && down_since && now - down_since >= b->timeout) {
			cli_warn("no NATS server could be reached within %.1fs", (double)b->timeout / 1000);
			rc = EX_TEMPFAIL;
			stop_by = now; /* what is in flight goes back */
			continue;
		}
		if (next_due && now >= next_due)
			empty = false, next_due = 0;
		if (now >= next_repair) {
			/* again in a minute, or when the earliest lease of another's
			 * claim (a consumer killed) runs out, whichever comes first */
			if (spool_repair(o.q, 0, NULL, &e) != 0)
				cli_warn("%s", e.msg);
			int64_t lease = spool_queue_next_lease(o.q);
			next_repair = now + REPAIR_EVERY;
			if (lease > now && lease < next_repair)
				next_repair = lease + 1;
			empty = false;
		}
		/* refill once half the window has come back: claims in batches,
		 * one holder write and one pass of this loop for many messages */
		size_t cap = o.fails ? 1 : o.nfl, n = 0;
		bool low = o.inflight == 0 || o.inflight <= cap / 2;
		if (now >= pause_look || pause_event) {
			paused = spool_queue_paused(o.q);
			pause_look = now + PAUSE_LOOK;
			pause_event = false;
		}
		bool can = !stop_by && b->connected && now >= o.rest_until && !empty && low && !paused;
		while (can && o.inflight + n < cap) {
			spool_msg *m;
			int r = spool_claim(o.q, &m, &next_due, &e);
			if (r < 0) {
				cli_warn("%s", e.msg);
				o.rest_until = now + 1000;
				break;
			}
			if (r == 0) {
				empty = true;
				break;
			}
			batch[n++] = m;
		}
		if (n) {
			size_t k = 0;
			for (size_t i = 0; i < n; i++)
				if (prepare(&o, batch[i], &nms[k], &fds[k]) == 0)
					batch[k++] = batch[i];
			for (size_t i = 0; i < k; i++)
				publish(&o, batch[i], nms[i], fds[i]);
			continue;
		}
		if (b->drain && empty && !o.inflight) {
			if (o.deferred)
				rc = EX_TEMPFAIL;
			break;
		}
		if (next_tick <= now) {
			next_tick = 0;
			tick_leases(&o, &next_tick);
			if (!next_tick)
				next_tick = now + 1000;
		}
		if (next_tick < wake)
			wake = next_tick;
		if (o.rest_until > now && o.rest_until < wake)
			wake = o.rest_until;
		if (next_due && next_due < wake)
			wake = next_due;
		if (stop_by && stop_by < wake)
			wake = stop_by;
		if (next_repair < wake)
			wake = next_repair;
		struct pollfd p[3] = {{b->sigfd, POLLIN, 0}, {b->evfd, POLLIN, 0},
		                      {spool_watch_fd(w), POLLIN, 0}};
		int ms = wake > now ? (int)(wake - now) : 0;
		if (poll(p, 3, ms) > 0 && (p[2].revents & POLLIN) &&
		    spool_watch_read(w, on_watch, &wa, &e) < 0)
			cli_warn("%s", e.msg);
	}
	/* what is still in flight goes back, uncounted: published again by the
	 * next run, the stream's duplicate window drops it if it had it */
	for (size_t i = 0; i < o.nfl; i++) {
		if (!o.fl[i].m)
			continue;
		if (spool_release(o.fl[i].m, &e) != 0)
			cli_warn("%s: %s: %s", queue, o.fl[i].id, e.msg);
		flight_end(&o, &o.fl[i], o.fds, &o.nfds);
	}
	spool_closer_put(o.fds, o.nfds);
	o.nfds = 0;
	bridge_close(b);
	take_answers(&o); /* none can come now; frees the list */
	spool_closer_stop();
	if (lost) {
		cli_warn("queue %s was removed or replaced", queue);
		rc = EX_NOINPUT;
	}
	if (b->drain || b->stop)
		cli_warn("out %s -> %s: %lld published, %lld retried, %lld dead", queue, subject,
		         o.published, o.retried, o.dead);
	free(batch);
	free(nms);
	free(fds);
	free(o.fl);
	free(o.fds);
	free(o.body);
	pthread_mutex_destroy(&o.mu);
	spool_watch_free(w);
	spool_queue_close(o.q);
	spool_close(sp);
	return rc;
}
