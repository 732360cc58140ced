/* SPDX-License-Identifier: MIT */
/*
 * web.c: the operators' page (`dashboard ADDR:PORT`, mq-relayd.conf(5)): a
 * libmicrohttpd daemon of its own on mq-relayd's loop, as receive.c's are,
 * serving an overview of every queue, a page per queue and per message,
 * their JSON, and the page's three files (relayd/web/, built in).
 *
 * Every figure comes from the library calls mq-stat and mq-peek make
 * (spool_stat, spool_list, spool_view); every action from those of
 * mq-replay, mq-rm and mq-pause.  Each page is built from the same JSON its
 * /api/ twin answers, so what a script sees and what the page shows with
 * scripts off cannot drift apart.
 *
 * Safety: read-only unless `actions on`; then POST only, with the page's
 * CSRF token and the page's own Origin, each action an audit line in the
 * log.  Without a password-file only loopback is allowed (conf.c) and the
 * Host header must name loopback (a page rebound by DNS is refused).  Every
 * answer carries a Content-Security-Policy without inline script or style;
 * message text is escaped on the way out, and the page's script writes it
 * with textContent only.
 */
#include <arpa/inet.h>
#include <crypt.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"
#include "relayd.h"
#include "web/assets.h"

#define SAMPLE_EVERY 10000          /* ms between samples of the counters */
#define SAMPLES 361                 /* an hour of them, and the one before */
#define BODY_MAX 65536              /* bytes of a message body shown */
#define RECENT 50                   /* messages on a queue's page */
#define DEAD_SHOWN 50               /* dead letters listed one by one */
#define DEAD_GROUPED 10000          /* dead letters read for the grouping by reason */
#define GROUPS 50                   /* reasons shown */
#define GROUP_IDS 100               /* ids of a group its replay button takes */
#define POST_MAX 65536              /* bytes of a form */
#define ACTION_IDS 1000             /* ids one action takes */
#define LOGIN_CACHE 8               /* Authorization headers that passed, by hash */

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                          "base-uri 'none'; form-action 'self'";

struct sample {
	int64_t at;
	long long sent, received, handled, forwarded, failed, backlog;
};

struct web {
	struct relayd *r;
	struct MHD_Daemon *d;
	struct loop_io *io;
	struct loop_timer timer, tick;
	char *addr;
	char port[8];
	bool tls, actions;
	struct user *users;      /* NULL: no login (loopback only) */
	size_t nusers;
	struct crypt_data *cd;   /* crypt_r's work area (large: kept) */
	unsigned char cache[LOGIN_CACHE][32]; /* sha-256 of Authorization headers that passed */
	char cache_user[LOGIN_CACHE][65];
	size_t ncache, cache_next;
	char csrf[65];           /* this daemon's token, hex */
	char *mem_cert, *mem_key;
	struct sample ring[SAMPLES];
	size_t nring, head;      /* head: where the next sample goes */
	/* sends into every queue, by any producer, counted from inotify (spool_tally) */
	spool_tally *tally;
	struct loop_io *tally_io;
	char **tallied;          /* the queue of each tally slot */
	struct spool_tally_counts *counts;
	size_t ntallied;
};

struct wreq {
	bool answered;
	bool post;
	char who[65];
	char *body;
	size_t len;
	bool too_big;
};

/* ---- text: what a message holds, safe to show ---- */

/* Bytes of a valid UTF-8 sequence at p (n left), 0 if there is none. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t k = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (!k || p[0] >= 0xf5 || k > n)
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((k == 3 && p[0] == 0xe0 && p[1] < 0xa0) || (k == 4 && p[0] == 0xf0 && p[1] < 0x90) ||
	    (k == 4 && p[0] == 0xf4 && p[1] > 0x8f) || (k == 3 && p[0] == 0xed && p[1] > 0x9f))
		return 0;
	return k;
}

/* p[0..n) as valid UTF-8 text: newlines and tabs kept, other control bytes
 * and what is not UTF-8 as \xNN.  Malloc'd, NULL when out of memory. */
static char *
clean_text(const char *p, size_t n)
{
	char *out = malloc(n * 4 + 1);
	if (!out)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)p[i];
		size_t u = c >= 0x80 ? utf8_len((const unsigned char *)p + i, n - i) : 0;
		if (u) {
			memcpy(out + k, p + i, u);
			k += u, i += u;
		} else if (c >= 0x80 || (c < 0x20 && c != '\n' && c != '\t') || c == 0x7f) {
			k += (size_t)sprintf(out + k, "\\x%02x", c);
			i++;
		} else {
			out[k++] = (char)c, i++;
		}
	}
	out[k] = '\0';
	return out;
}

/* A body is shown as binary when it has a NUL, or when more than one byte
 * in ten is neither text nor UTF-8. */
static bool
binary(const char *p, size_t n)
{
	size_t odd = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)p[i];
		if (!c)
			return true;
		size_t u = c >= 0x80 ? utf8_len((const unsigned char *)p + i, n - i) : 0;
		if (u) {
			i += u;
			continue;
		}
		odd += c >= 0x80 || (c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f;
		i++;
	}
	return odd * 10 > n;
}

/* hexdump -C of the first n bytes (at most 4096) */
static char *
hexdump(const unsigned char *p, size_t n)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		return NULL;
	if (n > 4096)
		n = 4096;
	for (size_t i = 0; i < n; i += 16) {
		fprintf(o, "%08zx ", i);
		for (size_t j = 0; j < 16; j++)
			if (i + j < n)
				fprintf(o, "%s%02x", j == 8 ? "  " : " ", p[i + j]);
			else
				fputs(j == 8 ? "    " : "   ", o);
		fputs("  |", o);
		for (size_t j = 0; j < 16 && i + j < n; j++)
			fputc(p[i + j] >= 0x20 && p[i + j] < 0x7f ? p[i + j] : '.', o);
		fputs("|\n", o);
	}
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* A JSON string of bytes that may not be UTF-8 (jansson wants UTF-8). */
static json_t *
jtext(const char *s)
{
	char *c = clean_text(s, strlen(s));
	json_t *j = json_string(c ? c : "");
	free(c);
	return j;
}

/* HTML text and attribute values: the five characters that matter, escaped. */
static void
esc(FILE *o, const char *s)
{
	for (; s && *s; s++)
		switch (*s) {
		case '&': fputs("&amp;", o); break;
		case '<': fputs("&lt;", o); break;
		case '>': fputs("&gt;", o); break;
		case '"': fputs("&quot;", o); break;
		case '\'': fputs("&#39;", o); break;
		default: fputc(*s, o);
		}
}

static const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static long long
jint(const json_t *o, const char *k)
{
	return (long long)json_integer_value(json_object_get(o, k));
}

static void
age_of(FILE *o, const json_t *v)
{
	char buf[32];
	if (json_is_integer(v))
		fputs(spool_fmt_age((int64_t)json_integer_value(v) * 1000, buf, sizeof buf), o);
	else
		fputs("-", o);
}

/* ---- the figures (the JSON of /api/...) ---- */

static int64_t
oldest_waiting(const struct spool_stat *st)
{
	int64_t t = 0;
	for (int k = SPOOL_READY; k <= SPOOL_CLAIMED; k++)
		earlier(&t, st->oldest_by[k]);
	return t;
}

static json_t *
queue_json(const char *name, const struct spool_stat *st)
{
	int64_t old = oldest_waiting(st);
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b, s:I}", "queue", name,
	                 "ready", (json_int_t)st->n[SPOOL_READY], "delayed",
	                 (json_int_t)st->n[SPOOL_DELAYED], "in_flight", (json_int_t)st->n[SPOOL_CLAIMED],
	                 "dead", (json_int_t)st->n[SPOOL_DEAD], "kept", (json_int_t)st->n[SPOOL_DONE],
	                 "bytes", (json_int_t)st->bytes, "corrupt", (json_int_t)st->corrupt,
	                 "oldest_age", old ? json_integer((st->now - old) / 1000) : json_null(),
	                 "oldest", old ? json_integer(old) : json_null(),
	                 "paused", st->paused, "expired_leases", (json_int_t)st->lapsed);
}

static long long
backlog_now(struct relayd *r)
{
	struct spool_err e = {0};
	long long n = 0;
	char **names = spool_queues(r->sp, &e);
	for (char **q = names; q && *q; q++) {
		spool_queue *qq = spool_queue_open(r->sp, *q, SPOOL_LOOK, &e);
		struct spool_stat st;
		if (qq && spool_stat(qq, &st, &e) == 0)
			n += st.n[SPOOL_READY] + st.n[SPOOL_DELAYED] + st.n[SPOOL_CLAIMED];
		spool_queue_close(qq);
	}
	spool_strv_free(names);
	return n;
}

/* Count the sends of queues made since the last look, from now on. */
static void
tally_queues(struct web *w)
{
	struct spool_err e = {0};
	char **names = w->tally ? spool_queues(w->r->sp, &e) : NULL;
	for (char **n = names; n && *n; n++) {
		size_t i = 0;
		while (i < w->ntallied && strcmp(w->tallied[i], *n) != 0)
			i++;
		if (i < w->ntallied)
			continue;
		char **v = realloc(w->tallied, (w->ntallied + 1) * sizeof *v);
		if (v)
			w->tallied = v;
		struct spool_tally_counts *c = realloc(w->counts, (w->ntallied + 1) * sizeof *c);
		if (c)
			w->counts = c;
		if (!v || !c || !(v[w->ntallied] = strdup(*n)))
			break;
		memset(&c[w->ntallied], 0, sizeof *c);
		spool_queue *q = spool_queue_open(w->r->sp, *n, SPOOL_LOOK, &e);
		if (q && spool_tally_add(w->tally, q, w->ntallied, &e) == 0)
			w->ntallied++;
		else
			free(v[w->ntallied]);
		spool_queue_close(q);
	}
	spool_strv_free(names);
}

static void
on_tally(void *arg, uint32_t events)
{
	struct web *w = arg;
	(void)events;
	spool_tally_read(w->tally, w->counts, w->ntallied);
}

static void
take_sample(struct web *w, struct sample *s, long long backlog)
{
	struct relayd *r = w->r;
	if (w->tally)
		spool_tally_read(w->tally, w->counts, w->ntallied);
	s->sent = 0;
	for (size_t i = 0; i < w->ntallied; i++)
		s->sent += w->counts[i].sent;
	s->at = spool_now();
	s->received = r->n.received;
	s->handled = r->n.handled;
	s->forwarded = r->n.forwarded;
	s->failed = r->n.retried + r->n.dead;
	s->backlog = backlog;
}

static void
on_tick(void *arg)
{
	struct web *w = arg;
	tally_queues(w);
	take_sample(w, &w->ring[w->head], backlog_now(w->r));
	w->head = (w->head + 1) % SAMPLES;
	if (w->nring < SAMPLES)
		w->nring++;
	loop_timer_set(w->r->loop, &w->tick, spool_now() + SAMPLE_EVERY);
}

static const struct sample *
sample_at(const struct web *w, size_t i) /* 0: the oldest kept */
{
	return &w->ring[(w->head + SAMPLES - w->nring + i) % SAMPLES];
}

/* Rates per second between samples (interval i from from[i] to t[i], s),
 * the last from the newest sample to now; "now" the rate of the last
 * interval at least 2 s long. */
static json_t *
rates_json(struct web *w, long long backlog)
{
	static const char *const names[] = {"sent", "received", "handled", "forwarded", "failed"};
	struct sample now;
	take_sample(w, &now, backlog);
	json_t *t = json_array(), *from = json_array(), *series[5], *bl = json_array();
	for (int k = 0; k < 5; k++)
		series[k] = json_array();
	const struct sample *prev = NULL;
	for (size_t i = 0; i <= w->nring; i++) {
		const struct sample *s = i < w->nring ? sample_at(w, i) : &now;
		if (prev && s->at - prev->at >= 1000) {
			double dt = (double)(s->at - prev->at) / 1000.0;
			long long d[5] = {s->sent - prev->sent, s->received - prev->received,
			                  s->handled - prev->handled, s->forwarded - prev->forwarded,
			                  s->failed - prev->failed};
			json_array_append_new(from, json_integer(prev->at / 1000));
			json_array_append_new(t, json_integer(s->at / 1000));
			for (int k = 0; k < 5; k++)
				json_array_append_new(series[k], json_real((double)d[k] / dt));
			json_array_append_new(bl, json_integer(s->backlog));
		}
		if (i < w->nring)
			prev = s;
	}
	/* the rate now: from the sample at least 2 s old that is newest */
	const struct sample *base = NULL;
	for (size_t i = w->nring; i-- > 0;)
		if (now.at - sample_at(w, i)->at >= 2000) {
			base = sample_at(w, i);
			break;
		}
	json_t *cur = json_object();
	long long nowv[5] = {now.sent, now.received, now.handled, now.forwarded, now.failed};
	for (int k = 0; k < 5; k++) {
		double v = 0;
		if (base) {
			long long b[5] = {base->sent, base->received, base->handled, base->forwarded,
			                  base->failed};
			v = (double)(nowv[k] - b[k]) * 1000.0 / (double)(now.at - base->at);
		}
		json_object_set_new(cur, names[k], json_real(v));
	}
	json_t *o = json_pack("{s:i, s:o, s:o, s:o, s:{s:o, s:o, s:o, s:o, s:o}, s:o}", "interval",
	                      SAMPLE_EVERY / 1000, "now", cur, "from", from, "t", t, "series", names[0],
	                      series[0], names[1], series[1], names[2], series[2], names[3], series[3],
	                      names[4], series[4], "backlog", bl);
	return o;
}

static json_t *
consumers_json(struct relayd *r)
{
	json_t *a = json_array();
	for (struct consumer *c = r->conf.consumers; c; c = c->next) {
		if (c->retired || c->kind != CONSUME_EXEC)
			continue;
		const char *state = c->cmd_broken ? "cannot run" : c->paused ? "paused" :
		                    c->gone ? "queue missing" : c->running ? "running" : "idle";
		json_array_append_new(a, json_pack("{s:s, s:o, s:I, s:I, s:s}", "queue", c->queue,
		                                   "command", jtext(c->cmd), "concurrency",
		                                   (json_int_t)c->concurrency, "running",
		                                   (json_int_t)c->running, "state", state));
	}
	return a;
}

static json_t *
forwards_json(struct relayd *r)
{
	json_t *a = json_array();
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		if (c->kind == CONSUME_FORWARD && c->fwd && !c->retired)
			json_array_append_new(a, forward_state_json(c));
	return a;
}

/* the enqueue time of the oldest waiting message, ms; none sorts last */
static int64_t
joldest(const json_t *q)
{
	const json_t *v = json_object_get(q, "oldest");
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : INT64_MAX;
}

static int
by_dead(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	long long d = jint(y, "dead") - jint(x, "dead");
	return d ? (d > 0 ? 1 : -1) : strcmp(jstr(x, "queue"), jstr(y, "queue"));
}

static int
by_age(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int64_t tx = joldest(x), ty = joldest(y);
	return tx != ty ? (tx < ty ? -1 : 1) : strcmp(jstr(x, "queue"), jstr(y, "queue"));
}

/* sort: "dead" (most first), "age" (oldest first), else by name */
static json_t *
overview_json(struct web *w, const char *sort)
{
	struct relayd *r = w->r;
	struct spool_err e = {0};
	json_t *queues = json_array();
	long long backlog = 0;
	char **names = spool_queues(r->sp, &e);
	for (char **n = names; n && *n; n++) {
		spool_queue *q = spool_queue_open(r->sp, *n, SPOOL_LOOK, &e);
		struct spool_stat st;
		if (q && spool_stat(q, &st, &e) == 0) {
			json_array_append_new(queues, queue_json(*n, &st));
			backlog += st.n[SPOOL_READY] + st.n[SPOOL_DELAYED] + st.n[SPOOL_CLAIMED];
		}
		spool_queue_close(q);
	}
	spool_strv_free(names);
	size_t nq = json_array_size(queues);
	if (sort && nq > 1 && (strcmp(sort, "dead") == 0 || strcmp(sort, "age") == 0)) {
		json_t **v = calloc(nq, sizeof(json_t *));
		if (v) {
			for (size_t i = 0; i < nq; i++)
				v[i] = json_incref(json_array_get(queues, i));
			int (*by)(const void *, const void *) = sort[0] == 'd' ? by_dead : by_age;
			qsort(v, nq, sizeof(json_t *), by); /* NOLINT(bugprone-sizeof-expression): of pointers */
			json_array_clear(queues);
			for (size_t i = 0; i < nq; i++)
				json_array_append_new(queues, v[i]);
			free(v);
		}
	}
	char t[40];
	return json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
	                 "name", r->name, "updated", spool_fmt_time(spool_now(), t, sizeof t), "sort",
	                 sort && (strcmp(sort, "dead") == 0 || strcmp(sort, "age") == 0) ? sort : "name",
	                 "actions", w->actions, "queues", queues, "rates", rates_json(w, backlog),
	                 "consumers", consumers_json(r), "forwards", forwards_json(r), "counters",
	                 "received", (json_int_t)r->n.received, "forwarded", (json_int_t)r->n.forwarded,
	                 "handled", (json_int_t)r->n.handled, "retried", (json_int_t)r->n.retried,
	                 "dead_lettered", (json_int_t)r->n.dead, "replayed", (json_int_t)r->n.replayed);
}

/* ---- a queue ---- */

struct listed {
	struct spool_entry en;
	char name[256];
};

struct qctx {
	spool_queue *q;
	struct listed recent[RECENT]; /* the newest waiting messages */
	size_t nrecent;
	struct listed dead[DEAD_SHOWN]; /* the newest dead letters */
	size_t ndead;
	json_t *groups;      /* reason -> {count, newest, ids} */
	long grouped;
	bool cut;            /* more dead letters than were grouped */
};

/* Keep en among the n newest of v (by enqueue time, then id). */
static void
keep_newest(struct listed *v, size_t *n, size_t max, const struct spool_entry *en)
{
	size_t at = *n;
	if (*n == max) {
		size_t low = 0;
		for (size_t i = 1; i < *n; i++)
			if (v[i].en.created < v[low].en.created)
				low = i;
		if (v[low].en.created > en->created)
			return;
		at = low;
	} else {
		(*n)++;
	}
	v[at].en = *en;
	snprintf(v[at].name, sizeof v[at].name, "%s", en->name);
	v[at].en.name = v[at].name;
	v[at].en.path = NULL;
}

static int
newest_first(const void *a, const void *b)
{
	const struct listed *x = a, *y = b;
	return x->en.created != y->en.created ? (x->en.created < y->en.created ? 1 : -1) :
	                                        strcmp(y->en.id, x->en.id);
}

static int
each_waiting(const struct spool_entry *en, void *arg)
{
	struct qctx *c = arg;
	keep_newest(c->recent, &c->nrecent, RECENT, en);
	return 0;
}

static int
each_dead(const struct spool_entry *en, void *arg)
{
	struct qctx *c = arg;
	if (c->grouped == DEAD_GROUPED) {
		c->cut = true;
		return 1;
	}
	c->grouped++;
	keep_newest(c->dead, &c->ndead, DEAD_SHOWN, en);
	const char *why = *en->reason ? en->reason : "(no reason recorded)";
	json_t *g = json_object_get(c->groups, why);
	if (!g && json_object_size(c->groups) < GROUPS * 4) {
		g = json_pack("{s:o, s:I, s:I, s:[]}", "reason", jtext(why), "count", (json_int_t)0,
		              "newest", (json_int_t)0, "ids");
		json_object_set_new(c->groups, why, g);
	}
	if (!g)
		return 0;
	json_object_set_new(g, "count", json_integer(jint(g, "count") + 1));
	if (en->created / 1000 > jint(g, "newest"))
		json_object_set_new(g, "newest", json_integer(en->created / 1000));
	json_t *ids = json_object_get(g, "ids");
	if (json_array_size(ids) < GROUP_IDS)
		json_array_append_new(ids, json_string(en->id));
	return 0;
}

static json_t *
entry_json(spool_queue *q, struct spool_entry *en, int64_t now)
{
	spool_entry_peek(q, en);
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:o, s:o}", "id", en->id, "state",
	                      spool_state_name(en->state), "attempts", (json_int_t)en->attempts,
	                      "created", (json_int_t)(en->created / 1000), "age",
	                      (json_int_t)((now - en->created) / 1000), "size",
	                      (json_int_t)en->body_size, "key", jtext(en->key), "first_line",
	                      jtext(en->line));
	if (*en->reason)
		json_object_set_new(o, en->state == SPOOL_DEAD ? "dead_reason" : "last_failure",
		                    jtext(en->reason));
	if (en->state == SPOOL_DELAYED)
		json_object_set_new(o, "due", json_integer(en->t / 1000));
	if (en->state == SPOOL_CLAIMED)
		json_object_set_new(o, "lease_until", json_integer(en->t / 1000));
	return o;
}

static int
groups_by_count(const void *a, const void *b)
{
	long long d = jint(*(json_t *const *)b, "count") - jint(*(json_t *const *)a, "count");
	return d ? (d > 0 ? 1 : -1) : 0;
}

/* NULL and e (EX_NOTFOUND for a queue that is not there) */
static json_t *
queue_page_json(struct web *w, const char *name, struct spool_err *e)
{
	spool_queue *q = spool_queue_open(w->r->sp, name, SPOOL_LOOK, e);
	struct spool_stat st;
	if (!q || spool_stat(q, &st, e) != 0) {
		spool_queue_close(q);
		return NULL;
	}
	struct qctx *c = calloc(1, sizeof *c);
	if (!c) {
		spool_queue_close(q);
		return spool_fail(e, EX_OSERR, "out of memory"), NULL;
	}
	c->q = q;
	c->groups = json_object();
	if (spool_list(q, 1u << SPOOL_READY | 1u << SPOOL_DELAYED | 1u << SPOOL_CLAIMED, 0,
	               each_waiting, c, e) < 0 ||
	    spool_list(q, 1u << SPOOL_DEAD, SPOOL_LIST_PEEK, each_dead, c, e) < 0) {
		json_decref(c->groups);
		free(c);
		spool_queue_close(q);
		return NULL;
	}
	int64_t now = spool_now();
	qsort(c->recent, c->nrecent, sizeof *c->recent, newest_first);
	qsort(c->dead, c->ndead, sizeof *c->dead, newest_first);
	for (size_t i = 0; i < c->nrecent; i++) /* moved by the sort */
		c->recent[i].en.name = c->recent[i].name;
	for (size_t i = 0; i < c->ndead; i++)
		c->dead[i].en.name = c->dead[i].name;
	json_t *recent = json_array(), *dead = json_array(), *groups = json_array(), *hist = json_array();
	for (size_t i = 0; i < c->nrecent; i++)
		json_array_append_new(recent, entry_json(q, &c->recent[i].en, now));
	for (size_t i = 0; i < c->ndead; i++)
		json_array_append_new(dead, entry_json(q, &c->dead[i].en, now));
	size_t ng = json_object_size(c->groups), k = 0;
	json_t **gv = calloc(ng + 1, sizeof(json_t *));
	const char *key;
	json_t *g;
	json_object_foreach(c->groups, key, g)
		if (gv)
			gv[k++] = g;
	if (gv) {
		qsort(gv, k, sizeof(json_t *), groups_by_count); /* NOLINT(bugprone-sizeof-expression): of pointers */
		for (size_t i = 0; i < k && i < GROUPS; i++)
			json_array_append(groups, gv[i]);
	}
	free(gv);
	for (size_t b = 0; b < SPOOL_STAT_NB; b++) {
		char label[16];
		if (b < SPOOL_STAT_NB - 1)
			snprintf(label, sizeof label, "<%dm", spool_stat_buckets[b]);
		else
			snprintf(label, sizeof label, "%dm+", spool_stat_buckets[SPOOL_STAT_NB - 2]);
		json_array_append_new(hist, json_pack("{s:s, s:I}", "age", label, "count",
		                                      (json_int_t)st.hist[b]));
	}
	char t[40];
	json_t *o = json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "name", w->r->name,
	                      "updated", spool_fmt_time(now, t, sizeof t), "actions", w->actions,
	                      "queue", queue_json(name, &st), "backlog_by_age", hist, "recent", recent,
	                      "dead_letters", dead, "dead_by_reason", groups, "dead_grouped",
	                      (json_int_t)c->grouped, "dead_cut", c->cut);
	json_decref(c->groups);
	free(c);
	spool_queue_close(q);
	return o;
}

/* ---- a message ---- */

static json_t *
message_json(struct web *w, const char *queue, const char *id, struct spool_err *e)
{
	spool_queue *q = spool_queue_open(w->r->sp, queue, SPOOL_LOOK, e);
	struct spool_view v;
	if (!q || spool_view(q, id, BODY_MAX, &v, e) != 0) {
		spool_queue_close(q);
		return NULL;
	}
	int64_t now = spool_now();
	/* what mq-peek --json says of it (state, attempts, due, lease, failure ...), and the page's own */
	json_t *o = spool_entry_json(q, &v.en);
	json_object_del(o, "path"); /* the page names no path of the host */
	json_object_set_new(o, "name", json_string(w->r->name));
	json_object_set_new(o, "queue", json_string(queue));
	json_object_set_new(o, "actions", json_boolean(w->actions));
	json_object_set_new(o, "age", json_integer((now - v.en.created) / 1000));
	json_object_set_new(o, "body_size", json_integer(v.body_size));
	char *h = clean_text(v.head, v.head_len);
	json_object_set_new(o, "headers", json_string(h ? h : ""));
	free(h);
	bool bin = binary(v.body, v.body_len);
	json_object_set_new(o, "binary", json_boolean(bin));
	char *b = bin ? hexdump((const unsigned char *)v.body, v.body_len) : clean_text(v.body, v.body_len);
	json_object_set_new(o, bin ? "hexdump" : "body", json_string(b ? b : ""));
	free(b);
	json_object_set_new(o, "shown", json_integer((json_int_t)(bin && v.body_len > 4096 ? 4096 : v.body_len)));
	if (*v.en.key)
		json_object_set_new(o, "key", jtext(v.en.key));
	spool_view_free(&v);
	spool_queue_close(q);
	return o;
}

/* ---- pages: the template with its @WORD@ filled in ---- */

struct fill {
	const char *title, *page, *queue;
	const char *main;  /* HTML */
	const char *updated;
};

static char *
render(struct web *w, const struct fill *f)
{
	const struct web_asset *t = web_asset("page.html");
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o || !t) {
		if (o)
			fclose(o);
		free(buf);
		return NULL;
	}
	const char *p = (const char *)t->data, *end = p + t->len;
	while (p < end) {
		const char *at = memchr(p, '@', (size_t)(end - p));
		if (!at) {
			(void)fwrite(p, 1, (size_t)(end - p), o); /* a memstream: fclose says */
			break;
		}
		(void)fwrite(p, 1, (size_t)(at - p), o);
		const char *close = memchr(at + 1, '@', (size_t)(end - at - 1));
		size_t n = close ? (size_t)(close - at - 1) : 0;
		const char *word = at + 1;
#define IS(s) (n == sizeof(s) - 1 && memcmp(word, (s), n) == 0)
		if (IS("TITLE"))
			esc(o, f->title);
		else if (IS("PAGE"))
			esc(o, f->page);
		else if (IS("QUEUE"))
			esc(o, f->queue ? f->queue : "");
		else if (IS("CSRF"))
			esc(o, w->csrf);
		else if (IS("NAME"))
			esc(o, w->r->name);
		else if (IS("UPDATED"))
			esc(o, f->updated);
		else if (IS("MODE"))
			fputs(w->actions ? "actions on" : "read-only", o);
		else if (IS("VERSION"))
			esc(o, SPOOL_VERSION);
		else if (IS("MAIN"))
			fputs(f->main, o);
		else {
			fputc('@', o);
			p = at + 1;
			continue;
		}
#undef IS
		p = close + 1;
	}
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void
num_td(FILE *o, const char *k, long long v)
{
	fprintf(o, "<td class=\"num\" data-k=\"%s\">%lld</td>", k, v);
}

/* A form that POSTs an action (shown only with actions on). */
static void
action_form(FILE *o, struct web *w, const char *queue, const char *what, const char *label,
            const json_t *ids)
{
	if (!w->actions)
		return;
	fputs("<form class=\"act\" method=\"post\" action=\"/q/", o);
	esc(o, queue);
	fprintf(o, "/%s\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">", what, w->csrf);
	size_t i;
	const json_t *id;
	json_array_foreach(ids, i, id) {
		fputs("<input type=\"hidden\" name=\"id\" value=\"", o);
		esc(o, json_string_value(id));
		fputs("\">", o);
	}
	fprintf(o, "<button type=\"submit\" data-act=\"%s\">", what);
	esc(o, label);
	fputs("</button></form>", o);
}

static void
queue_rows(FILE *o, const json_t *queues)
{
	size_t i;
	const json_t *q;
	json_array_foreach(queues, i, q) {
		const char *name = jstr(q, "queue");
		fputs("<tr data-queue=\"", o);
		esc(o, name);
		fputs("\"><td><a href=\"/q/", o);
		esc(o, name);
		fputs("\">", o);
		esc(o, name);
		fputs("</a></td>", o);
		num_td(o, "ready", jint(q, "ready"));
		num_td(o, "delayed", jint(q, "delayed"));
		num_td(o, "in_flight", jint(q, "in_flight"));
		fprintf(o, "<td class=\"num%s\" data-k=\"dead\">%lld</td>", jint(q, "dead") ? " bad" : "",
		        jint(q, "dead"));
		fputs("<td class=\"num\" data-k=\"oldest_age\">", o);
		age_of(o, json_object_get(q, "oldest_age"));
		fputs("</td>", o);
		num_td(o, "bytes", jint(q, "bytes"));
		fprintf(o, "<td data-k=\"state\">%s</td></tr>\n",
		        json_is_true(json_object_get(q, "paused")) ? "<span class=\"badge\">paused</span>" : "");
	}
}

static char *
overview_html(const json_t *j)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		return NULL;
	const json_t *queues = json_object_get(j, "queues");
	const char *sort = jstr(j, "sort");
	fprintf(o, "<section><h2>Queues <span class=\"count\" id=\"nqueues\">%zu</span>"
	        "<input id=\"filter\" type=\"search\" placeholder=\"filter\" hidden></h2>\n"
	        "<table id=\"queues\" class=\"grid\" data-sort=\"%s\"><thead><tr>"
	        "<th><a href=\"/?sort=name\" data-sort=\"name\">queue</a></th>"
	        "<th class=\"num\">ready</th><th class=\"num\">delayed</th><th class=\"num\">in flight</th>"
	        "<th class=\"num\"><a href=\"/?sort=dead\" data-sort=\"dead\">dead</a></th>"
	        "<th class=\"num\"><a href=\"/?sort=age\" data-sort=\"age\">oldest</a></th>"
	        "<th class=\"num\">bytes</th><th>state</th></tr></thead><tbody>\n",
	        json_array_size(queues), sort);
	queue_rows(o, queues);
	fputs("</tbody></table>", o);
	if (!json_array_size(queues))
		fputs("<p class=\"none\">No queues in the spool yet.</p>", o);
	fputs("</section>\n", o);
	/* rates: figures now (for scripts off), the chart drawn by the script */
	const json_t *now = json_object_get(json_object_get(j, "rates"), "now");
	fputs("<section><h2>Rates <small>per second, up to the last hour</small></h2><p id=\"rates\">", o);
	static const char *const series[] = {"sent", "received", "handled", "forwarded", "failed"};
	static const char *const label[] = {"sent", "received", "acked", "forwarded", "failed"};
	for (int k = 0; k < 5; k++)
		fprintf(o, "<span class=\"rate s-%s\">%s <b data-k=\"%s\">%.1f</b>/s</span> ", series[k],
		        label[k], series[k], json_real_value(json_object_get(now, series[k])));
	fputs("</p><div class=\"chart\"><span class=\"ymax\" id=\"chart-max\"></span>"
	      "<svg id=\"chart\" viewBox=\"0 0 720 140\" preserveAspectRatio=\"none\" "
	      "role=\"img\" aria-label=\"rates of the last hour\"></svg>"
	      "<span class=\"x0\" id=\"chart-x0\">an hour ago</span><span class=\"x1\">now</span>"
	      "</div></section>\n", o);
	/* consumers and forwards */
	const json_t *cs = json_object_get(j, "consumers"), *fs = json_object_get(j, "forwards"), *c;
	size_t i;
	fputs("<div class=\"pair\"><section><h2>Consumers</h2><table id=\"consumers\" class=\"grid\"><thead><tr>"
	      "<th>queue</th><th>command</th><th class=\"num\">concurrency</th>"
	      "<th class=\"num\">running</th><th>state</th></tr></thead><tbody>\n", o);
	json_array_foreach(cs, i, c) {
		fputs("<tr><td>", o);
		esc(o, jstr(c, "queue"));
		fputs("</td><td><code>", o);
		esc(o, jstr(c, "command"));
		fputs("</code></td>", o);
		num_td(o, "concurrency", jint(c, "concurrency"));
		num_td(o, "running", jint(c, "running"));
		fputs("<td data-k=\"state\">", o);
		esc(o, jstr(c, "state"));
		fputs("</td></tr>\n", o);
	}
	fputs("</tbody></table>", o);
	if (!json_array_size(cs))
		fputs("<p class=\"none\">No consume lines.</p>", o);
	fputs("</section>\n<section><h2>Forwards</h2><table id=\"forwards\" class=\"grid\"><thead><tr>"
	      "<th>queue</th><th>peer</th><th>state</th><th class=\"num\">in flight</th>"
	      "<th class=\"num\">failures</th><th>last error</th></tr></thead><tbody>\n", o);
	json_array_foreach(fs, i, c) {
		fputs("<tr><td>", o);
		esc(o, jstr(c, "queue"));
		fputs("</td><td>", o);
		esc(o, jstr(c, "peer"));
		fputs(" <small>", o);
		esc(o, jstr(c, "to"));
		fputs("</small></td><td data-k=\"state\">", o);
		esc(o, jstr(c, "state"));
		fputs("</td>", o);
		num_td(o, "in_flight", jint(c, "in_flight"));
		num_td(o, "failures_in_a_row", jint(c, "failures_in_a_row"));
		fputs("<td data-k=\"last_error\">", o);
		esc(o, jstr(c, "last_error"));
		fputs("</td></tr>\n", o);
	}
	fputs("</tbody></table>", o);
	if (!json_array_size(fs))
		fputs("<p class=\"none\">No forward lines.</p>", o);
	fputs("</section></div>\n", o);
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static void
entry_rows(FILE *o, struct web *w, const char *queue, const json_t *list, bool dead)
{
	size_t i;
	const json_t *m;
	json_array_foreach(list, i, m) {
		const char *id = jstr(m, "id");
		fputs("<tr data-id=\"", o);
		esc(o, id);
		fputs("\"><td><a class=\"id\" href=\"/q/", o);
		esc(o, queue);
		fputs("/m/", o);
		esc(o, id);
		fputs("\">", o);
		esc(o, id);
		fputs("</a></td><td data-k=\"state\">", o);
		esc(o, jstr(m, "state"));
		fputs("</td><td class=\"num\" data-k=\"age\">", o);
		age_of(o, json_object_get(m, "age"));
		fputs("</td>", o);
		num_td(o, "attempts", jint(m, "attempts"));
		fputs("<td data-k=\"key\">", o);
		esc(o, jstr(m, "key"));
		fputs("</td><td data-k=\"line\">", o);
		const char *why = jstr(m, dead ? "dead_reason" : "last_failure");
		if (*why) {
			fputs("<span class=\"why\">", o);
			esc(o, why);
			fputs("</span> ", o);
		}
		esc(o, jstr(m, "first_line"));
		fputs("</td>", o);
		if (w->actions) {
			json_t *one = json_pack("[s]", id);
			fputs("<td class=\"acts\">", o);
			if (dead)
				action_form(o, w, queue, "replay", "replay", one);
			if (strcmp(jstr(m, "state"), "claimed") != 0)
				action_form(o, w, queue, "delete", "delete", one);
			fputs("</td>", o);
			json_decref(one);
		}
		fputs("</tr>\n", o);
	}
}

static char *
queue_html(struct web *w, const json_t *j)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		return NULL;
	const json_t *q = json_object_get(j, "queue");
	const char *name = jstr(q, "queue");
	bool paused = json_is_true(json_object_get(q, "paused"));
	fputs("<section><h2>Queue <span class=\"qname\">", o);
	esc(o, name);
	fprintf(o, "</span> <span id=\"paused\" class=\"badge\"%s>paused</span></h2>\n",
	        paused ? "" : " hidden");
	fputs("<table id=\"counts\" class=\"grid\"><thead><tr><th class=\"num\">ready</th>"
	      "<th class=\"num\">delayed</th><th class=\"num\">in flight</th><th class=\"num\">dead</th>"
	      "<th class=\"num\">kept</th><th class=\"num\">oldest</th><th class=\"num\">bytes</th>"
	      "</tr></thead><tbody><tr>", o);
	num_td(o, "ready", jint(q, "ready"));
	num_td(o, "delayed", jint(q, "delayed"));
	num_td(o, "in_flight", jint(q, "in_flight"));
	num_td(o, "dead", jint(q, "dead"));
	num_td(o, "kept", jint(q, "kept"));
	fputs("<td class=\"num\" data-k=\"oldest_age\">", o);
	age_of(o, json_object_get(q, "oldest_age"));
	fputs("</td>", o);
	num_td(o, "bytes", jint(q, "bytes"));
	fputs("</tr></tbody></table>\n", o);
	if (w->actions) {
		json_t *none = json_array();
		fputs("<div class=\"actions\">", o);
		action_form(o, w, name, paused ? "resume" : "pause", paused ? "resume" : "pause", none);
		if (jint(q, "dead")) {
			fputs("<form class=\"act\" method=\"post\" action=\"/q/", o);
			esc(o, name);
			fprintf(o, "/replay\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
			        "<input type=\"hidden\" name=\"all\" value=\"1\">"
			        "<button type=\"submit\" data-act=\"replay-all\">replay all %lld dead</button></form>",
			        w->csrf, jint(q, "dead"));
		}
		fputs("</div>\n", o);
		json_decref(none);
	}
	fputs("</section>\n", o);
	/* the backlog by age, as mq-stat's table, drawn: bars are SVG rects */
	const json_t *hist = json_object_get(j, "backlog_by_age"), *b;
	size_t i;
	long long max = 1;
	json_array_foreach(hist, i, b)
		if (jint(b, "count") > max)
			max = jint(b, "count");
	fputs("<section><h3>Backlog by age <small>ready messages</small></h3>"
	      "<table id=\"hist\" class=\"hist\"><tbody>\n", o);
	json_array_foreach(hist, i, b) {
		long long n = jint(b, "count");
		fputs("<tr><th>", o);
		esc(o, jstr(b, "age"));
		fprintf(o, "</th><td class=\"num\" data-k=\"count\">%lld</td><td class=\"bar\">"
		        "<svg viewBox=\"0 0 100 10\" preserveAspectRatio=\"none\"><rect height=\"10\" "
		        "width=\"%.1f\"></rect></svg></td></tr>\n", n, 100.0 * (double)n / (double)max);
	}
	fputs("</tbody></table></section>\n", o);
	fputs("<section><h3>Recent messages <small>the newest waiting</small></h3>"
	      "<table id=\"recent\" class=\"grid\"><thead><tr><th>id</th><th>state</th>"
	      "<th class=\"num\">age</th><th class=\"num\">attempts</th><th>key</th>"
	      "<th>first line</th>", o);
	fputs(w->actions ? "<th></th>" : "", o);
	fputs("</tr></thead><tbody>\n", o);
	entry_rows(o, w, name, json_object_get(j, "recent"), false);
	fputs("</tbody></table></section>\n", o);
	fputs("<section><h3>Dead letters by reason</h3><table id=\"reasons\" class=\"grid\"><thead><tr>"
	      "<th>reason</th><th class=\"num\">count</th><th class=\"num\">newest</th>", o);
	fputs(w->actions ? "<th></th>" : "", o);
	fputs("</tr></thead><tbody>\n", o);
	const json_t *g;
	int64_t now = spool_now() / 1000;
	json_array_foreach(json_object_get(j, "dead_by_reason"), i, g) {
		fputs("<tr><td class=\"why\" data-k=\"reason\">", o);
		esc(o, jstr(g, "reason"));
		fputs("</td>", o);
		num_td(o, "count", jint(g, "count"));
		fputs("<td class=\"num\">", o);
		json_t *age = json_integer(now - jint(g, "newest"));
		age_of(o, age);
		json_decref(age);
		fputs("</td>", o);
		if (w->actions) {
			fputs("<td class=\"acts\">", o);
			action_form(o, w, name, "replay", "replay these", json_object_get(g, "ids"));
			fputs("</td>", o);
		}
		fputs("</tr>\n", o);
	}
	fputs("</tbody></table>", o);
	if (json_is_true(json_object_get(j, "dead_cut")))
		fprintf(o, "<p class=\"none\">Grouped: the first %lld dead letters.</p>", jint(j, "dead_grouped"));
	fputs("</section>\n<section><h3>Dead letters <small>the newest</small></h3>"
	      "<table id=\"dead\" class=\"grid\"><thead><tr><th>id</th><th>state</th>"
	      "<th class=\"num\">age</th><th class=\"num\">attempts</th><th>key</th>"
	      "<th>reason, first line</th>", o);
	fputs(w->actions ? "<th></th>" : "", o);
	fputs("</tr></thead><tbody>\n", o);
	entry_rows(o, w, name, json_object_get(j, "dead_letters"), true);
	fputs("</tbody></table></section>\n", o);
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

static char *
message_html(struct web *w, const json_t *j)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		return NULL;
	const char *queue = jstr(j, "queue"), *id = jstr(j, "id"), *state = jstr(j, "state");
	fputs("<section><h2>Message <span class=\"id\">", o);
	esc(o, id);
	fputs("</span> in <a href=\"/q/", o);
	esc(o, queue);
	fputs("\">", o);
	esc(o, queue);
	fputs("</a></h2>\n<dl class=\"facts\"><dt>state</dt><dd id=\"state\">", o);
	esc(o, state);
	fprintf(o, "</dd><dt>attempts</dt><dd>%lld</dd><dt>age</dt><dd>", jint(j, "attempts"));
	age_of(o, json_object_get(j, "age"));
	fprintf(o, "</dd><dt>body</dt><dd>%lld bytes</dd>", jint(j, "body_size"));
	if (*jstr(j, "key")) {
		fputs("<dt>key</dt><dd>", o);
		esc(o, jstr(j, "key"));
		fputs("</dd>", o);
	}
	const json_t *lf = json_object_get(j, "last_failure");
	if (lf) {
		fputs("<dt>last failure</dt><dd class=\"why\">", o);
		esc(o, jstr(lf, "status"));
		fputs("</dd>", o);
	}
	fputs("</dl>\n", o);
	if (lf && *jstr(lf, "stderr")) {
		fputs("<h3>Its handler's last words</h3><pre id=\"stderr\">", o);
		esc(o, jstr(lf, "stderr"));
		fputs("</pre>\n", o);
	}
	if (w->actions) {
		json_t *one = json_pack("[s]", id);
		fputs("<div class=\"actions\">", o);
		if (strcmp(state, "dead") == 0 || strcmp(state, "done") == 0)
			action_form(o, w, queue, "replay", "replay", one);
		if (strcmp(state, "claimed") != 0)
			action_form(o, w, queue, "delete", "delete", one);
		fputs("</div>\n", o);
		json_decref(one);
	}
	fputs("<h3>Headers</h3><pre id=\"headers\">", o);
	esc(o, jstr(j, "headers"));
	fputs("</pre>\n", o);
	long long size = jint(j, "body_size"), shown = jint(j, "shown");
	if (json_is_true(json_object_get(j, "binary"))) {
		fprintf(o, "<h3>Body <small>binary, %lld bytes%s</small></h3><pre id=\"body\" class=\"hex\">",
		        size, size > shown ? ", the first shown" : "");
		esc(o, jstr(j, "hexdump"));
	} else {
		fprintf(o, "<h3>Body <small>%lld bytes", size);
		if (size > shown)
			fprintf(o, ", the first %lld shown", shown);
		fputs("</small></h3><pre id=\"body\">", o);
		esc(o, jstr(j, "body"));
	}
	fputs("</pre></section>\n", o);
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* ---- answers ---- */

static enum MHD_Result
respond(struct wreq *rq, struct MHD_Connection *conn, unsigned status, const char *type,
        const void *body, size_t len, enum MHD_ResponseMemoryMode mode, const char *extra_name,
        const char *extra_value)
{
	struct MHD_Response *res = MHD_create_response_from_buffer(len, (void *)body, mode);
	if (!res)
		return MHD_NO;
	MHD_add_response_header(res, "Content-Type", type);
	MHD_add_response_header(res, "Content-Security-Policy", csp);
	MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(res, "X-Frame-Options", "DENY");
	MHD_add_response_header(res, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(res, "Cross-Origin-Opener-Policy", "same-origin");
	MHD_add_response_header(res, "Cross-Origin-Resource-Policy", "same-origin");
	MHD_add_response_header(res, "Cache-Control", "no-store");
	if (extra_name)
		MHD_add_response_header(res, extra_name, extra_value);
	enum MHD_Result ok = MHD_queue_response(conn, status, res);
	MHD_destroy_response(res);
	rq->answered = true;
	return ok;
}

static enum MHD_Result
text_answer(struct wreq *rq, struct MHD_Connection *conn, unsigned status, const char *msg,
            const char *extra_name, const char *extra_value)
{
	return respond(rq, conn, status, "text/plain; charset=utf-8", msg, strlen(msg),
	               MHD_RESPMEM_MUST_COPY, extra_name, extra_value);
}

static enum MHD_Result
json_answer(struct wreq *rq, struct MHD_Connection *conn, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(1)) : NULL;
	json_decref(j);
	if (!s)
		return text_answer(rq, conn, 500, "out of memory\n", NULL, NULL);
	return respond(rq, conn, status, "application/json", s, strlen(s), MHD_RESPMEM_MUST_FREE,
	               NULL, NULL);
}

static enum MHD_Result
page_answer(struct wreq *rq, struct MHD_Connection *conn, struct web *w, struct fill *f,
            char *main_html)
{
	f->main = main_html ? main_html : "<p>out of memory</p>";
	char *page = render(w, f);
	free(main_html);
	if (!page)
		return text_answer(rq, conn, 500, "out of memory\n", NULL, NULL);
	return respond(rq, conn, 200, "text/html; charset=utf-8", page, strlen(page),
	               MHD_RESPMEM_MUST_FREE, NULL, NULL);
}

static enum MHD_Result
error_answer(struct wreq *rq, struct MHD_Connection *conn, const struct spool_err *e)
{
	char msg[600];
	snprintf(msg, sizeof msg, "%s\n", e->msg);
	return text_answer(rq, conn, e->code == EX_NOTFOUND ? 404 : 500, msg, NULL, NULL);
}

/* ---- who may ask ---- */

/* 0 allowed (who set), else the status of the refusal. */
static int
login(struct web *w, struct MHD_Connection *conn, char *who, size_t wlen)
{
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
	if (!w->users) {
		snprintf(who, wlen, "local");
		return 0;
	}
	if (!h)
		return 401;
	unsigned char hh[32];
	token_hash(h, strlen(h), hh);
	int hit = -1;
	for (size_t i = 0; i < w->ncache; i++) /* every one, so the time says nothing */
		if (CRYPTO_memcmp(hh, w->cache[i], 32) == 0)
			hit = (int)i;
	if (hit >= 0) {
		snprintf(who, wlen, "%s", w->cache_user[hit]);
		return 0;
	}
	char user[65], pass[512];
	if (!basic_auth(h, user, sizeof user, pass, sizeof pass))
		return 401;
	const struct user *u = NULL;
	for (size_t i = 0; i < w->nusers; i++)
		if (strcmp(w->users[i].name, user) == 0)
			u = &w->users[i];
	/* an unknown user costs a hash too */
	const char *hash = u ? u->hash : w->users[0].hash;
	const char *out = crypt_r(pass, hash, w->cd);
	memset(pass, 0, sizeof pass);
	size_t n = strlen(hash);
	bool ok = u && out && out[0] != '*' && strlen(out) == n && CRYPTO_memcmp(out, hash, n) == 0;
	if (!ok) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
		char addr[INET6_ADDRSTRLEN] = "?";
		if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)ci->client_addr)->sin_addr, addr, sizeof addr);
		else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ci->client_addr)->sin6_addr, addr, sizeof addr);
		logmsg(LOG_NOTICE, "dashboard: failed login as '%s' from %s", spool_printable(user), addr);
		return 401;
	}
	memcpy(w->cache[w->cache_next], hh, 32);
	snprintf(w->cache_user[w->cache_next], sizeof w->cache_user[0], "%s", u->name);
	w->cache_next = (w->cache_next + 1) % LOGIN_CACHE;
	if (w->ncache < LOGIN_CACHE)
		w->ncache++;
	snprintf(who, wlen, "%s", u->name);
	return 0;
}

/* Without a login the page is loopback's only, and so must be the name the
 * browser asked for: a page of another site that a DNS answer pointed at
 * 127.0.0.1 names its own host. */
static bool
host_ok(struct web *w, struct MHD_Connection *conn)
{
	if (w->users)
		return true;
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	if (!h)
		return false;
	const char *colon = strrchr(h, ':');
	if (!colon || strcmp(colon + 1, w->port) != 0 || (h[0] == '[' && colon[-1] != ']'))
		return false;
	size_t n = (size_t)(colon - h);
	if ((n == 9 && strncasecmp(h, "localhost", 9) == 0) || (n == 5 && strncmp(h, "[::1]", 5) == 0))
		return true;
	if (n >= 4 && n < 16 && strncmp(h, "127.", 4) == 0) {
		char a[16];
		struct in_addr in;
		memcpy(a, h, n);
		a[n] = '\0';
		return inet_pton(AF_INET, a, &in) == 1;
	}
	return false;
}

/* A POST comes from this dashboard's own page: its Origin is the origin
 * the browser loaded the page from. */
static bool
origin_ok(struct web *w, struct MHD_Connection *conn)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host");
	/* a form posted under Referrer-Policy: no-referrer says "Origin: null";
	 * then the browser's own Sec-Fetch-Site (no page can set it) tells */
	if (!origin || strcmp(origin, "null") == 0) {
		const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
		return site && strcmp(site, "same-origin") == 0;
	}
	const char *scheme = w->tls ? "https://" : "http://";
	size_t sl = strlen(scheme);
	return host && strncmp(origin, scheme, sl) == 0 && strcasecmp(origin + sl, host) == 0;
}

static bool
csrf_ok(struct web *w, struct MHD_Connection *conn, const struct wreq *rq)
{
	char got[80] = "";
	const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");
	if (h)
		snprintf(got, sizeof got, "%s", h);
	else if (!rq->body || form_value(rq->body, rq->len, "csrf", 0, got, sizeof got) < 0)
		return false;
	return strlen(got) == 64 && CRYPTO_memcmp(got, w->csrf, 64) == 0;
}

/* ---- GET ---- */

/* "/q/NAME" "/q/NAME/m/ID" after prefix: 1, 0 not such a path, -1 too long */
static int
split_path(const char *p, char *queue, size_t qlen, char *id, size_t idlen, char *verb, size_t vlen)
{
	queue[0] = id[0] = verb[0] = '\0';
	if (strncmp(p, "/q/", 3) != 0)
		return 0;
	p += 3;
	size_t n = strcspn(p, "/");
	if (n == 0 || n >= qlen)
		return n ? -1 : 0;
	memcpy(queue, p, n);
	queue[n] = '\0';
	p += n;
	if (!*p)
		return 1;
	if (strncmp(p, "/m/", 3) == 0) {
		p += 3;
		if (strlen(p) >= idlen || strchr(p, '/'))
			return -1;
		strcpy(id, p);
		return 1;
	}
	p++;
	if (strlen(p) >= vlen || strchr(p, '/'))
		return -1;
	strcpy(verb, p);
	return 1;
}

static enum MHD_Result
serve_get(struct web *w, struct wreq *rq, struct MHD_Connection *conn, const char *url)
{
	struct spool_err e = {0};
	bool api = strncmp(url, "/api/", 5) == 0;
	const char *path = api ? url + 4 : url;
	if (!api && strncmp(url, "/static/", 8) == 0) {
		const struct web_asset *a = web_asset(url + 8);
		if (!a || strcmp(url + 8, "page.html") == 0)
			return text_answer(rq, conn, 404, "no such file\n", NULL, NULL);
		return respond(rq, conn, 200, a->type, a->data, a->len, MHD_RESPMEM_PERSISTENT, NULL, NULL);
	}
	if (strcmp(path, "/") == 0 || (api && strcmp(path, "/overview") == 0)) {
		const char *sort = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "sort");
		json_t *j = overview_json(w, sort);
		if (api || !j)
			return json_answer(rq, conn, 200, j);
		struct fill f = {.title = "overview", .page = "overview", .updated = jstr(j, "updated")};
		enum MHD_Result res = page_answer(rq, conn, w, &f, overview_html(j));
		json_decref(j);
		return res;
	}
	char queue[80], id[40], verb[16];
	int sp = split_path(path, queue, sizeof queue, id, sizeof id, verb, sizeof verb);
	if (sp == 1 && !verb[0] && spool_queue_name_ok(queue)) {
		json_t *j = id[0] ? message_json(w, queue, id, &e) : queue_page_json(w, queue, &e);
		if (!j)
			return error_answer(rq, conn, &e);
		if (api)
			return json_answer(rq, conn, 200, j);
		char title[120];
		snprintf(title, sizeof title, "%s%s%s", queue, id[0] ? " " : "", id);
		struct fill f = {.title = title, .page = id[0] ? "message" : "queue", .queue = queue,
		                 .updated = jstr(j, "updated")};
		enum MHD_Result res = page_answer(rq, conn, w, &f, id[0] ? message_html(w, j) : queue_html(w, j));
		json_decref(j);
		return res;
	}
	if (sp == 1 && spool_queue_name_ok(queue) &&
	    (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0 || strcmp(verb, "replay") == 0 ||
	     strcmp(verb, "delete") == 0))
		return text_answer(rq, conn, 405, "POST only\n", "Allow", w->actions ? "POST" : "");
	return text_answer(rq, conn, 404, "no such page\n", NULL, NULL);
}

/* ---- POST: the actions ---- */

struct act {
	spool_queue *q;
	const char *verb;
	char **ids;          /* NULL: every dead letter (replay all) */
	size_t nids;
	bool *found;
	long done;
	struct spool_err err; /* the first failure */
	long failed;
};

static int
act_one(const struct spool_entry *en, void *arg)
{
	struct act *a = arg;
	size_t i = 0;
	if (a->ids) {
		while (i < a->nids && strcmp(a->ids[i], en->id) != 0)
			i++;
		if (i == a->nids || a->found[i])
			return 0;
		a->found[i] = true;
	}
	struct spool_err e = {0};
	int rc = a->verb[0] == 'r' ? spool_replay(a->q, en, NULL, 0, &e) : spool_rm(a->q, en, 0, &e);
	if (rc == 0) {
		a->done++;
	} else {
		if (!a->failed++)
			a->err = e;
	}
	return 0;
}

/* One audit line per ACTION_LOG_IDS ids: who, what, which queue, which ids. */
#define ACTION_LOG_IDS 40

static void
audit(const char *who, const char *verb, const char *queue, char **ids, size_t nids, long done,
      bool all)
{
	if (all) {
		logmsg(LOG_NOTICE, "dashboard: %s: %s queue %s: all dead letters (%ld done)", who, verb,
		       queue, done);
		return;
	}
	if (!nids) {
		logmsg(LOG_NOTICE, "dashboard: %s: %s queue %s%s", who, verb, queue, done ? "" : " (failed)");
		return;
	}
	for (size_t i = 0; i < nids; i += ACTION_LOG_IDS) {
		char list[ACTION_LOG_IDS * 28 + 1];
		size_t k = 0;
		for (size_t j = i; j < nids && j < i + ACTION_LOG_IDS; j++)
			k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", k ? " " : "", ids[j]);
		logmsg(LOG_NOTICE, "dashboard: %s: %s queue %s: ids %s (%ld of %zu done)", who, verb, queue,
		       list, done, nids);
	}
}

static enum MHD_Result
serve_post(struct web *w, struct wreq *rq, struct MHD_Connection *conn, const char *url)
{
	struct relayd *r = w->r;
	struct spool_err e = {0};
	char queue[80], id[40], verb[16];
	if (rq->too_big)
		return text_answer(rq, conn, 413, "form too large\n", NULL, NULL);
	if (!csrf_ok(w, conn, rq))
		return text_answer(rq, conn, 403, "missing or wrong CSRF token\n", NULL, NULL);
	if (split_path(url, queue, sizeof queue, id, sizeof id, verb, sizeof verb) != 1 || id[0] ||
	    !spool_queue_name_ok(queue))
		return text_answer(rq, conn, 404, "no such action\n", NULL, NULL);
	bool pause = strcmp(verb, "pause") == 0, resume = strcmp(verb, "resume") == 0;
	bool replay = strcmp(verb, "replay") == 0, del = strcmp(verb, "delete") == 0;
	if (!pause && !resume && !replay && !del)
		return text_answer(rq, conn, 404, "no such action\n", NULL, NULL);
	spool_queue *q = spool_queue_open(r->sp, queue, 0, &e);
	if (!q)
		return error_answer(rq, conn, &e);
	struct act a = {.q = q, .verb = verb};
	char **ids = NULL;
	size_t nids = 0;
	int status = 200;
	const char *msg = "done";
	if (pause || resume) {
		if ((pause ? spool_queue_pause(q, &e) : spool_queue_resume(q, &e)) != 0) {
			status = 500, msg = e.msg;
		}
		audit(rq->who, verb, queue, NULL, 0, status == 200, false);
		a.done = status == 200;
	} else {
		char buf[64];
		bool all = replay && form_value(rq->body ? rq->body : "", rq->len, "all", 0, buf, sizeof buf) > 0 &&
		           strcmp(buf, "1") == 0;
		for (size_t i = 0; !all && i < ACTION_IDS; i++) {
			if (form_value(rq->body ? rq->body : "", rq->len, "id", i, buf, sizeof buf) < 0)
				break;
			if (!spool_id_ok(buf)) {
				status = 400, msg = "bad message id";
				break;
			}
			char **v = realloc(ids, (nids + 1) * sizeof *v);
			if (!v || !(v[nids] = strdup(buf))) {
				if (v)
					ids = v;
				status = 500, msg = "out of memory";
				break;
			}
			ids = v, nids++;
		}
		if (status == 200 && !all && !nids)
			status = 400, msg = "no id given";
		if (status == 200) {
			a.ids = all ? NULL : ids;
			a.nids = nids;
			a.found = nids ? calloc(nids, sizeof *a.found) : NULL;
			unsigned states = replay ? 1u << SPOOL_DEAD | 1u << SPOOL_DONE : 0;
			if (all)
				states = 1u << SPOOL_DEAD;
			if ((nids && !a.found) || spool_list(q, states, 0, act_one, &a, &e) < 0)
				status = 500, msg = nids && !a.found ? "out of memory" : e.msg;
			else if (a.failed)
				status = a.done ? 207 : 409, msg = a.err.msg;
			else if (a.ids && a.done < (long)nids)
				status = a.done ? 207 : 404, msg = "some ids were not found";
			if (replay)
				r->n.replayed += a.done;
			audit(rq->who, verb, queue, ids, nids, a.done, all);
		}
	}
	free(a.found);
	for (size_t i = 0; i < nids; i++)
		free(ids[i]);
	free(ids);
	spool_queue_close(q);
	const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept");
	if (accept && strstr(accept, "application/json"))
		return json_answer(rq, conn, status == 207 ? 200 : (unsigned)status,
		                   json_pack("{s:s, s:s, s:I, s:s}", "action", verb, "queue", queue, "done",
		                             (json_int_t)a.done, "message", msg));
	if (status != 200 && status != 207) {
		char text[600];
		snprintf(text, sizeof text, "%s: %s\n", verb, msg);
		return text_answer(rq, conn, (unsigned)status, text, NULL, NULL);
	}
	char loc[100];
	snprintf(loc, sizeof loc, "/q/%s", queue);
	return text_answer(rq, conn, 303, "done\n", "Location", loc);
}

/* ---- the server ---- */

/* Paths are taken as they came: a '%' makes a queue name or id invalid, so
 * "%2F" or "%2E%2E" are refused, never decoded into a path. */
static size_t
no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls, (void)c;
	return strlen(s);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct web *w = cls;
	struct wreq *rq = *con_cls;
	(void)version;
	if (!rq) {
		if (!(rq = calloc(1, sizeof *rq)))
			return MHD_NO;
		*con_cls = rq;
		if (!host_ok(w, conn))
			return text_answer(rq, conn, 421, "this dashboard answers to loopback names only\n",
			                   NULL, NULL);
		int st = login(w, conn, rq->who, sizeof rq->who);
		if (st)
			return text_answer(rq, conn, (unsigned)st, "login required\n", "WWW-Authenticate",
			                   "Basic realm=\"spoolmq dashboard\", charset=\"UTF-8\"");
		if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
			return serve_get(w, rq, conn, url);
		if (strcmp(method, "POST") != 0 || !w->actions)
			return text_answer(rq, conn, 405, w->actions ? "GET, HEAD or POST only\n" :
			                   "read-only: actions are off (mq-relayd.conf(5), actions on)\n",
			                   "Allow", w->actions ? "GET, HEAD, POST" : "GET, HEAD");
		if (!origin_ok(w, conn))
			return text_answer(rq, conn, 403, "cross-origin request refused\n", NULL, NULL);
		rq->post = true;
		return MHD_YES;
	}
	if (rq->answered) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (rq->len + n > POST_MAX) {
			rq->too_big = true;
		} else {
			char *b = realloc(rq->body, rq->len + n + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + rq->len, upload_data, n);
			rq->body = b;
			rq->len += n;
			b[rq->len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return serve_post(w, rq, conn, url);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode why)
{
	struct wreq *rq = *con_cls;
	(void)cls, (void)conn, (void)why;
	if (rq) {
		free(rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

static void
web_run(struct web *w)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	bool timed = false;
	for (int i = 0; i < 4; i++) {
		MHD_run(w->d);
		timed = MHD_get_timeout(w->d, &ms) == MHD_YES;
		if (!timed || ms > 0)
			break;
	}
	loop_timer_set(w->r->loop, &w->timer, timed ? spool_now() + (int64_t)(ms < 1 ? 1 : ms) : 0);
}

static void
on_io(void *arg, uint32_t events)
{
	(void)events;
	web_run(arg);
}

static void
on_timer(void *arg)
{
	web_run(arg);
}

static int
read_users(const char *file, struct user **v, size_t *n, struct spool_err *e)
{
	*v = NULL, *n = 0;
	if (!file)
		return 0;
	FILE *f = conf_fopen(file);
	struct stat st;
	if (!f)
		return spool_fail(e, EX_CONFIG, "password-file %s: %s", file, spool_strerror(errno));
	if (fstat(fileno(f), &st) != 0 || (st.st_mode & 077)) {
		fclose(f);
		return spool_fail(e, EX_CONFIG, "password-file %s: readable by group or others: chmod 600 it",
		                  file);
	}
	int rc = users_parse(f, file, v, n, e);
	fclose(f);
	if (rc != 0) {
		users_free(*v, *n);
		*v = NULL, *n = 0;
	}
	return rc;
}

void
web_stop(struct relayd *r)
{
	struct web *w = r->web;
	if (!w)
		return;
	if (w->d) {
		loop_io_del(r->loop, w->io);
		MHD_stop_daemon(w->d);
	}
	loop_timer_set(r->loop, &w->timer, 0);
	loop_timer_set(r->loop, &w->tick, 0);
	if (w->tally_io)
		loop_io_del(r->loop, w->tally_io);
	spool_tally_free(w->tally);
	for (size_t i = 0; i < w->ntallied; i++)
		free(w->tallied[i]);
	free(w->tallied);
	free(w->counts);
	users_free(w->users, w->nusers);
	free(w->cd);
	free(w->mem_cert);
	free(w->mem_key);
	free(w->addr);
	OPENSSL_cleanse(w->cache, sizeof w->cache);
	free(w);
	r->web = NULL;
}

int
web_start(struct relayd *r, struct spool_err *e)
{
	const struct dashboard *d = r->conf.dashboard;
	if (!d)
		return 0;
	struct web *w = calloc(1, sizeof *w);
	if (!w || !(w->addr = strdup(d->addr)) || !(w->cd = calloc(1, sizeof *w->cd))) {
		if (w)
			free(w->addr);
		free(w);
		return spool_fail(e, EX_OSERR, "out of memory");
	}
	r->web = w;
	w->r = r;
	w->actions = d->actions;
	snprintf(w->port, sizeof w->port, "%s", strrchr(d->addr, ':') + 1);
	loop_timer_init(&w->timer, on_timer, w);
	loop_timer_init(&w->tick, on_tick, w);
	unsigned char rnd[32];
	if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
		web_stop(r);
		return spool_fail(e, EX_OSERR, "getrandom: %s", strerror(errno));
	}
	for (int i = 0; i < 32; i++)
		snprintf(w->csrf + 2 * i, 3, "%02x", rnd[i]);
	if (read_users(d->password_file, &w->users, &w->nusers, e) != 0) {
		web_stop(r);
		return -1;
	}
	struct sockaddr_storage ss;
	bool v6;
	if (conf_sockaddr(d->addr, &ss, &v6) != 0) {
		web_stop(r);
		return spool_fail(e, EX_CONFIG, "dashboard %s: bad address", d->addr);
	}
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	struct MHD_OptionItem opts[12];
	int k = 0;
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)relayd_mhd_log, (void *)"dashboard"};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)d->max_connections, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, 32, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, NULL};
	if (d->tls_cert) {
		flags |= MHD_USE_TLS;
		w->tls = true;
		if (!(w->mem_cert = conf_slurp(d->tls_cert, e)) || !(w->mem_key = conf_slurp(d->tls_key, e))) {
			web_stop(r);
			return -1;
		}
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, w->mem_cert};
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, w->mem_key};
	}
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	w->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, w, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
	if (!w->d) {
		web_stop(r);
		return spool_fail(e, EX_CONFIG, "dashboard %s: cannot start the HTTP server (address in use, "
		                  "or a bad certificate or key)", d->addr);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(w->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || !(w->io = loop_io_add(r->loop, di->epoll_fd, EPOLLIN, on_io, w))) {
		MHD_stop_daemon(w->d);
		w->d = NULL;
		web_stop(r);
		return spool_fail(e, EX_OSERR, "dashboard %s: cannot watch the server: %s", d->addr,
		                  strerror(errno));
	}
	/* sends are seen by inotify: without it, no "sent" rate (but the rest works) */
	if (!(w->tally = spool_tally_new(e)) ||
	    !(w->tally_io = loop_io_add(r->loop, spool_tally_fd(w->tally), EPOLLIN, on_tally, w))) {
		logmsg(LOG_WARNING, "dashboard: no sent rate: %s", w->tally ? strerror(errno) : e->msg);
		spool_tally_free(w->tally);
		w->tally = NULL;
		*e = (struct spool_err){0};
	}
	on_tick(w); /* the first sample: rates count from the start */
	logmsg(LOG_INFO, "dashboard on %s://%s/ (%s, %s)", w->tls ? "https" : "http", d->addr,
	       w->users ? "login required" : "loopback, no login", w->actions ? "actions on" : "read-only");
	return 0;
}

/* SIGHUP: the password file and `actions` again; another address needs a
 * restart (said, not done). */
int
web_reload(struct relayd *r, const struct conf *nc, struct spool_err *e)
{
	struct web *w = r->web;
	const struct dashboard *d = nc->dashboard;
	if (!w || !d || strcmp(w->addr, d->addr) != 0) {
		if (w || d)
			logmsg(LOG_WARNING, "reload: a dashboard added, removed or moved needs a restart");
		return 0;
	}
	struct user *u;
	size_t n;
	if (read_users(d->password_file, &u, &n, e) != 0)
		return -1;
	if (!u && w->users && !dashboard_loopback(w->addr))
		return users_free(u, n), spool_fail(e, EX_CONFIG, "dashboard %s: a password-file is required",
		                                   w->addr);
	users_free(w->users, w->nusers);
	w->users = u, w->nusers = n;
	w->ncache = w->cache_next = 0;
	OPENSSL_cleanse(w->cache, sizeof w->cache);
	w->actions = d->actions;
	return 0;
}

int
web_check(const struct conf *c, struct spool_err *e)
{
	const struct dashboard *d = c->dashboard;
	if (!d)
		return 0;
	struct user *u;
	size_t n;
	if (read_users(d->password_file, &u, &n, e) != 0)
		return -1;
	users_free(u, n);
	const char *files[] = {d->tls_cert, d->tls_key};
	for (int i = 0; i < 2; i++) {
		char *text = files[i] ? conf_slurp(files[i], e) : NULL;
		if (files[i] && !text)
			return -1;
		free(text);
	}
	return 0;
}
