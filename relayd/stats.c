/* SPDX-License-Identifier: MIT */
/*
 * stats.c: what GET /v1/stats (JSON) and GET /metrics (Prometheus text
 * format) say: every queue of the spool as mq-stat --json counts it
 * (lib/stat.c, read-only), each forward's state, and the daemon's counters.
 * Label values are queue names, peers and states, never ids or keys.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relayd.h"


/* fn(queue name, its figures) for every queue of the spool that can be read. */
static void
each_queue(struct relayd *r, void (*fn)(void *, const char *, const struct spool_stat *), void *arg)
{
	struct spool_err e = {0};
	char **names = spool_queues(r->sp, &e);
	for (char **n = names; n && *n; n++) {
		spool_queue *q = spool_queue_open(r->sp, *n, SPOOL_LOOK, &e);
		struct spool_stat st;
		if (q && spool_stat(q, &st, &e) == 0)
			fn(arg, *n, &st);
		spool_queue_close(q);
	}
	spool_strv_free(names);
}

static void
add_json(void *arg, const char *name, const struct spool_stat *st)
{
	json_array_append_new(arg, spool_stat_json(name, st, NULL));
}

void *
receive_stats_json(struct relayd *r)
{
	json_t *queues = json_array(), *fwds = json_array();
	each_queue(r, add_json, queues);
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		if (c->kind == CONSUME_FORWARD && c->fwd && !c->retired)
			json_array_append_new(fwds, forward_state_json(c));
	return json_pack("{s:s, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}", "name", r->name, "queues",
	                 queues, "forwards", fwds, "counters", "received", (json_int_t)r->n.received,
	                 "forwarded", (json_int_t)r->n.forwarded, "handled", (json_int_t)r->n.handled,
	                 "retried", (json_int_t)r->n.retried, "dead_lettered", (json_int_t)r->n.dead,
	                 "replayed", (json_int_t)r->n.replayed);
}

static const char *const state_label[5] = {"ready", "delayed", "in_flight", "dead", "kept"};

struct qfig {
	char *name;
	struct spool_stat st;
};

struct figs {
	struct qfig *v;
	size_t n;
};

static void
collect(void *arg, const char *name, const struct spool_stat *st)
{
	struct figs *f = arg;
	struct qfig *v = realloc(f->v, (f->n + 1) * sizeof *v);
	if (!v)
		return;
	f->v = v;
	if ((v[f->n].name = strdup(name))) {
		v[f->n].st = *st;
		f->n++;
	}
}

char *
receive_metrics(struct relayd *r)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	if (!o)
		return NULL;
	/* every metric once, its samples together (the text format wants that) */
	struct figs f = {0};
	each_queue(r, collect, &f);
	fputs("# HELP spoolmq_messages Messages per queue and state.\n"
	      "# TYPE spoolmq_messages gauge\n", o);
	for (size_t i = 0; i < f.n; i++)
		for (int k = 0; k < 5; k++)
			fprintf(o, "spoolmq_messages{queue=\"%s\",state=\"%s\"} %ld\n", f.v[i].name,
			        state_label[k], f.v[i].st.n[k]);
	fputs("# HELP spoolmq_bytes Bytes of message files per queue and state.\n"
	      "# TYPE spoolmq_bytes gauge\n", o);
	for (size_t i = 0; i < f.n; i++)
		for (int k = 0; k < 5; k++)
			fprintf(o, "spoolmq_bytes{queue=\"%s\",state=\"%s\"} %lld\n", f.v[i].name,
			        state_label[k], (long long)f.v[i].st.bytes_by[k]);
	fputs("# HELP spoolmq_oldest_age_seconds Age of the oldest message per queue and state (0: none).\n"
	      "# TYPE spoolmq_oldest_age_seconds gauge\n", o);
	for (size_t i = 0; i < f.n; i++)
		for (int k = 0; k < 5; k++) {
			const struct spool_stat *st = &f.v[i].st;
			fprintf(o, "spoolmq_oldest_age_seconds{queue=\"%s\",state=\"%s\"} %.3f\n",
			        f.v[i].name, state_label[k],
			        st->oldest_by[k] ? (double)(st->now - st->oldest_by[k]) / 1000.0 : 0.0);
		}
	for (size_t i = 0; i < f.n; i++)
		free(f.v[i].name);
	free(f.v);
	static const struct {
		const char *name, *help;
	} ctr[] = {
		{"received", "Messages received over HTTP and stored."},
		{"forwarded", "Messages forwarded to a peer and acked."},
		{"handled", "Messages a consume handler acked."},
		{"retried", "Deliveries that failed and were given back for a retry."},
		{"dead_lettered", "Messages moved to dead/ by this daemon."},
		{"replayed", "Dead messages replayed by this daemon."},
	};
	long long v[] = {r->n.received, r->n.forwarded, r->n.handled, r->n.retried, r->n.dead,
	                 r->n.replayed};
	for (size_t i = 0; i < sizeof ctr / sizeof *ctr; i++)
		fprintf(o, "# HELP spoolmq_%s_total %s\n# TYPE spoolmq_%s_total counter\nspoolmq_%s_total %lld\n",
		        ctr[i].name, ctr[i].help, ctr[i].name, ctr[i].name, v[i]);
	fputs("# HELP spoolmq_http_answers_total Answers of this relay's HTTP server by class.\n"
	      "# TYPE spoolmq_http_answers_total counter\n", o);
	for (int k = 1; k <= 5; k++)
		fprintf(o, "spoolmq_http_answers_total{status=\"%dxx\"} %lld\n", k, receive_answers(r, k));
	forward_metrics(r, o);
	if (fclose(o) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
