/* SPDX-License-Identifier: MIT */
/*
 * stat.c: the figures of a queue that mq-stat prints and mq-relayd serves
 * (/v1/stats, /metrics): messages, bytes and the oldest message per state,
 * and the ready backlog by age in Postfix qshape's buckets.  Counting reads
 * names and sizes only and changes nothing; mending is spool_repair's.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spool_priv.h"

const int spool_stat_buckets[SPOOL_STAT_NB - 1] = {1, 5, 10, 20, 40, 80, 160, 320, 640, 1280};

struct linked {
	char id[ULID_LEN];
	bool held;      /* claimed, or waiting for a retry */
};

struct count_ctx {
	struct spool_stat *s;
	int64_t now;
	struct linked *v; /* what is in new/ and cur/, for the keys' heads */
	size_t n, cap;
};

static int
cmp_linked(const void *a, const void *b)
{
	return memcmp(a, b, ULID_LEN);
}

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
	if (en->state <= SPOOL_CLAIMED) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 256;
			struct linked *v = realloc(c->v, cap * sizeof *v);
			if (!v)
				return -1;
			c->v = v, c->cap = cap;
		}
		memcpy(c->v[c->n].id, en->id, ULID_LEN);
		c->v[c->n++].held = en->state == SPOOL_CLAIMED ||
		                    (en->state == SPOOL_DELAYED && en->attempts > 0);
	}
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

/* A key is held while its head (its message linked into new/ or cur/) is
 * claimed or waits for a retry. */
static int
count_key(void *arg, int keysfd, const char *enc, const char *const *v, size_t n)
{
	struct count_ctx *c = arg;
	(void)keysfd;
	if (n == 0)
		return 0;
	c->s->keys++;
	for (size_t i = 0; i < n; i++) {
		const char *id = v[i] + TIME_DIGITS + 1;
		struct linked *h = c->n ? bsearch(id, c->v, c->n, sizeof *c->v, cmp_linked) : NULL;
		if (!h || !h->held)
			continue;
		c->s->keys_held++;
		int64_t t = ulid_time(id);
		if (!c->s->oldest_held || t < c->s->oldest_held) {
			c->s->oldest_held = t;
			key_decode(enc, c->s->oldest_key, sizeof c->s->oldest_key);
		}
		break;
	}
	return 0;
}

int
spool_stat(spool_queue *q, struct spool_stat *s, struct spool_err *e)
{
	struct count_ctx c = {.s = s, .now = spool_now()};
	memset(s, 0, sizeof *s);
	s->now = c.now;
	int rc = spool_list(q, 0, SPOOL_LIST_SIZE, count, &c, e);
	if (rc == 0 && c.n > 1)
		qsort(c.v, c.n, sizeof *c.v, cmp_linked);
	if (rc == 0 && q->fd >= 0)
		key_each(q, count_key, &c);
	free(c.v);
	if (rc != 0)
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
	json_t *held = s->oldest_held ? json_string(s->oldest_key) : NULL; /* NULL: not UTF-8 */
	json_t *k = json_pack("{s:I, s:I, s:I, s:o, s:o}", "total", (json_int_t)s->keys, "held",
	                      (json_int_t)s->keys_held, "waiting", (json_int_t)s->n[SPOOL_WAITING],
	                      "oldest_held", held ? held : json_null(), "oldest_held_age",
	                      s->oldest_held ? json_integer((s->now - s->oldest_held) / 1000) :
	                                       json_null());
	json_t *o = json_pack(
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
	if (o) {
		json_object_set_new(o, "waiting", json_integer(s->n[SPOOL_WAITING]));
		json_object_set_new(o, "keys", k);
		json_object_set_new(json_object_get(o, "repaired"), "keys_handed_on",
		                    json_integer(rep->keys));
	} else {
		json_decref(k);
	}
	return o;
}
