/* SPDX-License-Identifier: MIT */
/*
 * stat.c: the figures of a queue that mq-stat prints and mq-relayd serves
 * (/v1/stats, /metrics): messages, bytes and the oldest message per state,
 * and the ready backlog by age in Postfix qshape's buckets.  Counting reads
 * names and sizes only and changes nothing; mending is spool_repair's.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "spool_priv.h"

const int spool_stat_buckets[SPOOL_STAT_NB - 1] = {1, 5, 10, 20, 40, 80, 160, 320, 640, 1280};

struct count_ctx {
	struct spool_stat *s;
	int64_t now;
};

static int
count(const struct spool_entry *en, void *arg)
{
	struct count_ctx *c = arg;
	struct spool_stat *s = c->s;
	s->n[en->state]++;
	if (en->size > 0) {
		s->bytes += en->size;
		s->bytes_by[en->state] += en->size;
	}
	if (en->state == SPOOL_CLAIMED && en->t <= c->now)
		s->lapsed++;
	if (!s->oldest_by[en->state] || en->created < s->oldest_by[en->state])
		s->oldest_by[en->state] = en->created;
	if (en->state == SPOOL_READY) {
		int64_t min = (c->now - en->created) / 60000;
		size_t b = 0;
		while (b < SPOOL_STAT_NB - 1 && min >= spool_stat_buckets[b])
			b++;
		s->hist[b]++;
	}
	return 0;
}

int
spool_stat(spool_queue *q, struct spool_stat *s, struct spool_err *e)
{
	struct count_ctx c = {.s = s, .now = spool_now()};
	memset(s, 0, sizeof *s);
	s->now = c.now;
	if (spool_list(q, 0, SPOOL_LIST_SIZE, count, &c, e) < 0)
		return -1;
	char **odd = spool_corrupt_list(q, e);
	if (!odd)
		return -1;
	while (odd[s->corrupt])
		s->corrupt++;
	spool_strv_free(odd);
	s->paused = spool_queue_paused(q) == 1;
	return 0;
}

void *
spool_stat_json(const char *queue, const struct spool_stat *s, const struct spool_repair *rep)
{
	static const struct spool_repair none;
	if (!rep)
		rep = &none;
	json_t *h = json_object();
	for (size_t b = 0; b < SPOOL_STAT_NB; b++) {
		char key[16];
		snprintf(key, sizeof key, b < SPOOL_STAT_NB - 1 ? "%dm" : "%dm+",
		         spool_stat_buckets[b < SPOOL_STAT_NB - 1 ? b : SPOOL_STAT_NB - 2]);
		json_object_set_new(h, key, json_integer(s->hist[b]));
	}
	int64_t oldest = s->oldest_by[SPOOL_READY];
	return json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I}}",
		"queue", queue, "ready", (json_int_t)s->n[SPOOL_READY], "delayed",
		(json_int_t)s->n[SPOOL_DELAYED], "in_flight", (json_int_t)s->n[SPOOL_CLAIMED],
		"expired_leases", (json_int_t)s->lapsed + (json_int_t)rep->leases, "dead", (json_int_t)s->n[SPOOL_DEAD], "kept",
		(json_int_t)s->n[SPOOL_DONE], "corrupt", (json_int_t)s->corrupt, "bytes",
		(json_int_t)s->bytes, "oldest_ready_age",
		oldest ? json_integer((s->now - oldest) / 1000) : json_null(), "backlog_by_age", h,
		"repaired", "expired_leases", (json_int_t)rep->leases, "expired_messages",
		(json_int_t)rep->expired, "tmp_files", (json_int_t)rep->tmp, "kept_removed",
		(json_int_t)rep->done, "dedup_markers", (json_int_t)rep->ids, "moved_to_corrupt",
		(json_int_t)rep->corrupt);
}
