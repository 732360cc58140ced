/* SPDX-License-Identifier: MIT */
/*
 * in.c: mq-bridge in STREAM CONSUMER QUEUE, a JetStream durable pull
 * consumer drained into a queue.  Each fetched batch is written into the
 * spool with the import API (lib/import.c), one group commit for the batch
 * (data synced, renamed into new/, new/ synced), and only then is each
 * message acked to JetStream.  A crash between the two makes JetStream
 * deliver it again after AckWait; the queue's received/ markers hold its
 * id, so it is stored once.
 *
 * The spool id: the message's Nats-Msg-Id when that is a spool id (a
 * message that left a spool through mq-bridge out keeps its id end to
 * end), else one derived from the stream: its time is the message's
 * stream timestamp, its random part the stream name's hash and the stream
 * sequence, so that every redelivery of one stream message has the same
 * id, and the file records Nats-Stream and Nats-Sequence (and the
 * original Nats-Msg-Id, if any).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bridge.h"

#define FETCH_WAIT 1000          /* ms a fetch waits for the first message (and a signal waits) */
#define DEFAULT_ACK_WAIT 30000   /* ms: AckWait of a consumer the bridge makes */
#define NAK_DELAY 5000           /* ms: a message the spool could not take now comes back after */
#define HEAD_MAX (256 << 10)     /* the spool's bound on a header block (spool-layout.md 5) */

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* A ULID from 48 bits of time (ms) and 80 of stream hash and sequence. */
static void
derived_id(char out[27], int64_t ms, const char *stream, uint64_t seq)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const char *p = stream; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	uint64_t hi = ((uint64_t)ms & 0xffffffffffffULL) << 16 | (h & 0xffff), lo = seq;
	for (int i = 0; i < 26; i++) {
		int pos = 125 - 5 * i; /* the lowest of this character's 5 bits, of 130 */
		unsigned v = 0;
		for (int k = 4; k >= 0; k--) {
			int bit = pos + k;
			unsigned x = bit >= 128 ? 0 : bit >= 64 ? (unsigned)(hi >> (bit - 64)) & 1 : (unsigned)(lo >> bit) & 1;
			v = v << 1 | x;
		}
		out[i] = b32[v];
	}
	out[26] = '\0';
}

/* A NATS header the spool can keep as it is (spool-layout.md 5). */
static bool
header_ok(const char *name, const char *val)
{
	size_t n = strlen(name);
	if (!n || n > 64 || !((*name >= 'A' && *name <= 'Z') || (*name >= 'a' && *name <= 'z')))
		return false;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
		      *c == '-'))
			return false;
	if (strlen(val) > 998)
		return false;
	for (const char *c = val; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return false;
	return true;
}

struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void
put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	for (int tries = 0; tries < 2; tries++) {
		va_start(ap, fmt);
		int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && b->len + (size_t)n < b->cap) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap : 4096;
		while (cap <= b->len + (size_t)n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p, b->cap = cap;
	}
}

struct in {
	struct bridge *b;
	const char *stream, *consumer;
	spool_queue *q;
	natsSubscription *sub;
	struct buf head;
	int fails;
	long long stored, dups, refused;
};

/* The header block of msg's file into o->head: Id and Date first, then the
 * NATS headers the spool can keep (others dropped, with a warning). */
static void
make_head(struct in *o, natsMsg *msg, const char *id, bool derived, const char *msgid,
          const jsMsgMetaData *meta)
{
	const char **keys = NULL;
	int nk = 0;
	const char *date = NULL;
	char when[40];
	o->head.len = 0;
	o->head.oom = false;
	if (natsMsgHeader_Get(msg, "Date", &date) != NATS_OK || !date || spool_parse_time(date) < 0)
		date = spool_fmt_time(meta->Timestamp / 1000000, when, sizeof when);
	put(&o->head, "Id: %s\nDate: %s\n", id, date);
	if (natsMsgHeader_Keys(msg, &keys, &nk) == NATS_OK) {
		for (int i = 0; i < nk; i++) {
			const char *k = keys[i];
			if (strcasecmp(k, "Id") == 0 || strcasecmp(k, "Date") == 0 ||
			    (strcasecmp(k, "Nats-Msg-Id") == 0 && !derived) ||
			    (derived && (strcasecmp(k, "Nats-Msg-Id") == 0 || strcasecmp(k, "Nats-Stream") == 0 ||
			                 strcasecmp(k, "Nats-Sequence") == 0)))
				continue;
			const char **vals = NULL;
			int nv = 0;
			if (natsMsgHeader_Values(msg, k, &vals, &nv) != NATS_OK)
				continue;
			for (int j = 0; j < nv; j++) {
				if (header_ok(k, vals[j]))
					put(&o->head, "%s: %s\n", k, vals[j]);
				else
					cli_warn("%s seq %llu: header '%s' dropped: the spool cannot keep it",
					         o->stream, (unsigned long long)meta->Sequence.Stream,
					         spool_printable(k));
			}
			free((void *)vals);
		}
		free((void *)keys);
	}
	if (derived) {
		if (msgid && header_ok("Nats-Msg-Id", msgid))
			put(&o->head, "Nats-Msg-Id: %s\n", msgid);
		put(&o->head, "Nats-Stream: %s\nNats-Sequence: %llu\n", meta->Stream,
		    (unsigned long long)meta->Sequence.Stream);
	}
	put(&o->head, "\n");
}

/* Never to be stored (over max-size, a header block too large): JetStream
 * is told to stop delivering it, loudly. */
static void
refuse(struct in *o, natsMsg *msg, uint64_t seq, const char *why)
{
	cli_warn("%s seq %llu: not stored: %s (terminated in JetStream)", o->stream,
	         (unsigned long long)seq, why);
	natsMsg_Term(msg, NULL);
	o->refused++;
}

/* Store a fetched batch, then ack what the spool holds. */
static void
store(struct in *o, natsMsgList *list)
{
	int n = list->Count;
	spool_import **v = calloc((size_t)n, sizeof(spool_import *));
	natsMsg **vm = calloc((size_t)n, sizeof(natsMsg *));
	uint64_t *seq = calloc((size_t)n, sizeof *seq);
	struct spool_err e = {0};
	int k = 0;
	bool rest = false;
	if (!v || !vm || !seq) {
		free(v), free(vm), free(seq);
		cli_warn("out of memory: the batch comes again after AckWait");
		return;
	}
	for (int i = 0; i < n; i++) {
		natsMsg *msg = list->Msgs[i];
		jsMsgMetaData *meta = NULL;
		const char *msgid = NULL;
		char id[27];
		if (natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
			cli_warn("%s: a message without JetStream metadata: ignored", o->stream);
			continue;
		}
		natsMsgHeader_Get(msg, "Nats-Msg-Id", &msgid);
		bool derived = !(msgid && spool_id_ok(msgid));
		if (derived)
			derived_id(id, meta->Timestamp / 1000000, meta->Stream, meta->Sequence.Stream);
		else
			snprintf(id, sizeof id, "%s", msgid);
		uint64_t sq = meta->Sequence.Stream;
		if (spool_received(o->q, id, NULL, 0)) { /* stored before: its ack was lost */
			natsMsg_Ack(msg, NULL);
			o->dups++;
			jsMsgMetaData_Destroy(meta);
			continue;
		}
		make_head(o, msg, id, derived, msgid, meta);
		jsMsgMetaData_Destroy(meta);
		spool_import *im = NULL;
		if (o->head.oom) {
			spool_fail(&e, EX_OSERR, "out of memory");
		} else if (o->head.len > HEAD_MAX) {
			refuse(o, msg, sq, "its headers are over the spool's 256 KiB");
			continue;
		} else if ((im = spool_import_new(o->q, id, "", NULL, &e)) &&
		           spool_import_write(im, o->head.p, o->head.len, &e) == 0 &&
		           spool_import_write(im, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
		                              &e) == 0 &&
		           spool_import_end(im, NULL, &e) == 0) {
			v[k] = im, vm[k] = msg, seq[k] = sq;
			k++;
			continue;
		}
		spool_import_free(im);
		if (e.code == EX_DATAERR) {
			refuse(o, msg, sq, e.msg);
		} else { /* the disk, the queue's limits: it comes again later */
			cli_warn("%s seq %llu: %s", o->stream, (unsigned long long)sq, e.msg);
			natsMsg_NakWithDelay(msg, NAK_DELAY, NULL);
			rest = true;
		}
	}
	spool_import_commit(v, (size_t)k);
	for (int i = 0; i < k; i++) {
		int r = spool_import_result(v[i], &e);
		if (r > 0)
			o->stored++;
		else if (r == 0)
			o->dups++;
		if (r >= 0) {
			natsMsg_Ack(vm[i], NULL); /* on disk: now, never before */
		} else if (e.code == EX_DATAERR) {
			refuse(o, vm[i], seq[i], e.msg);
		} else {
			cli_warn("%s seq %llu: %s", o->stream, (unsigned long long)seq[i], e.msg);
			natsMsg_NakWithDelay(vm[i], NAK_DELAY, NULL);
			rest = true;
		}
		spool_import_free(v[i]);
	}
	free(v), free(vm), free(seq);
	if (rest) /* the spool cannot take messages now: do not fetch more at once */
		bridge_rest(o->b, NAK_DELAY);
}

/* Bind to the durable consumer, making it if the stream has none of that
 * name: 0, or -1 (told why; try again later), or exit on a consumer that
 * does not ack explicitly. */
static int
bind(struct in *o)
{
	struct bridge *b = o->b;
	jsSubOptions so;
	jsErrCode jerr = 0;
	jsConsumerInfo *ci = NULL;
	char err[256];
	natsStatus s = js_GetConsumerInfo(&ci, b->js, o->stream, o->consumer, NULL, &jerr);
	if (s != NATS_OK && jerr == JSConsumerNotFoundErr) {
		jsConsumerConfig cc;
		jsConsumerConfig_Init(&cc);
		cc.Durable = o->consumer;
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = (b->timeout ? b->timeout : DEFAULT_ACK_WAIT) * 1000000; /* ns */
		cc.MaxDeliver = -1;
		cc.DeliverPolicy = js_DeliverAll;
		cc.MaxAckPending = b->window * 4 > 1000 ? b->window * 4 : 1000;
		jerr = 0;
		if ((s = js_AddConsumer(&ci, b->js, o->stream, &cc, NULL, &jerr)) == NATS_OK)
			cli_warn("made durable consumer %s of stream %s (explicit acks, AckWait %llds)",
			         o->consumer, o->stream, (long long)(cc.AckWait / 1000000000));
	}
	if (s != NATS_OK) {
		o->fails++;
		if (o->fails == 1 || o->fails % 10 == 0)
			cli_warn("in %s/%s -> %s: consumer: %s%s (%d in a row): trying again", o->stream,
			         o->consumer, spool_queue_name(o->q), bridge_strerror(s, err, sizeof err),
			         jerr == JSStreamNotFoundErr ? " (no such stream)" : "", o->fails);
		if (b->drain && jerr == JSStreamNotFoundErr)
			cli_die(EX_CONFIG, "stream %s does not exist", o->stream);
		return -1;
	}
	if (ci->Config && ci->Config->AckPolicy != js_AckExplicit)
		cli_die(EX_CONFIG, "consumer %s of stream %s does not ack explicitly: the bridge needs "
		        "AckPolicy explicit", o->consumer, o->stream);
	jsConsumerInfo_Destroy(ci);
	jsSubOptions_Init(&so);
	so.Stream = o->stream;
	so.Consumer = o->consumer;
	jerr = 0;
	if ((s = js_PullSubscribe(&o->sub, b->js, NULL, o->consumer, NULL, &so, &jerr)) != NATS_OK) {
		o->fails++;
		cli_warn("in %s/%s: subscribe: %s", o->stream, o->consumer,
		         bridge_strerror(s, err, sizeof err));
		o->sub = NULL;
		return -1;
	}
	return 0;
}

static bool
name_ok(const char *s)
{
	if (!*s || strlen(s) > 255)
		return false;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || strchr(".*>/\\\"", *p))
			return false;
	return true;
}

int
bridge_in(struct bridge *b, const char *stream, const char *consumer, const char *queue)
{
	struct spool_err e = {0};
	struct in o = {.b = b, .stream = stream, .consumer = consumer};
	if (!name_ok(stream))
		cli_die(EX_USAGE, "bad stream name '%s'", spool_printable(stream));
	if (!name_ok(consumer))
		cli_die(EX_USAGE, "bad consumer name '%s'", spool_printable(consumer));
	spool *sp = NULL;
	o.q = cli_queue(&sp, b->dir, queue, CLI_OR_CREATE);
	if (!o.q)
		cli_die(EX_NOINPUT, "queue %s does not exist", queue);
	/* a receiver killed between a commit's renames and its markers */
	if (spool_received_repair(o.q, &e) < 0)
		cli_warn("%s", e.msg);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 5000;
	bridge_connect(b, &jo);
	int rc = EX_DONE;
	int64_t down_since = 0;
	while (!b->stop) {
		int64_t now = spool_now();
		bridge_events(b);
		if (b->stop)
			break;
		if (b->connected)
			down_since = 0;
		else if (!down_since)
			down_since = now;
		if (b->drain && down_since && now - down_since >= (b->timeout ? b->timeout : 5000)) {
			cli_warn("no NATS server could be reached");
			rc = EX_TEMPFAIL;
			break;
		}
		if (!b->connected) {
			bridge_rest(b, 200);
			continue;
		}
		if (!o.sub && bind(&o) != 0) {
			bridge_rest(b, bridge_jitter(o.q, o.fails) + 100);
			continue;
		}
		natsMsgList list = {0};
		jsErrCode jerr = 0;
		natsStatus s = natsSubscription_Fetch(&list, o.sub, (int)b->window, FETCH_WAIT, &jerr);
		if (list.Count > 0) {
			if (o.fails)
				cli_warn("in %s/%s -> %s: fetching again", stream, consumer, queue);
			o.fails = 0;
			store(&o, &list);
			natsMsgList_Destroy(&list);
			continue;
		}
		natsMsgList_Destroy(&list);
		if (s == NATS_TIMEOUT || s == NATS_OK) {
			if (b->drain)
				break;
			continue;
		}
		char err[256];
		o.fails++;
		if (o.fails == 1 || o.fails % 10 == 0)
			cli_warn("in %s/%s -> %s: fetch: %s (%d in a row): trying again", stream, consumer,
			         queue, bridge_strerror(s, err, sizeof err), o.fails);
		if (s == NATS_INVALID_SUBSCRIPTION || s == NATS_CONNECTION_CLOSED || jerr) {
			natsSubscription_Destroy(o.sub); /* bound again: the consumer may be gone */
			o.sub = NULL;
		}
		bridge_rest(b, bridge_jitter(o.q, o.fails) + 100);
	}
	if (o.sub) {
		natsSubscription_Destroy(o.sub); /* not Unsubscribe: the durable consumer stays */
	}
	bridge_close(b);
	if (b->drain || b->stop)
		cli_warn("in %s/%s -> %s: %lld stored, %lld already held, %lld refused", stream, consumer,
		         queue, o.stored, o.dups, o.refused);
	free(o.head.p);
	spool_queue_close(o.q);
	spool_close(sp);
	return rc;
}
