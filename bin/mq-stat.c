/* SPDX-License-Identifier: MIT */
/*
 * mq-stat: the state of queues at a glance: counts per state, the oldest
 * ready message, bytes, and the backlog by age (after Postfix's qshape).
 * It only looks: it creates, moves and deletes nothing.  With --repair it
 * also runs the full repair (spool-layout.md 6.10: expired leases, expired
 * messages, abandoned tmp/ files, old dedup markers and kept messages) and
 * says what it mended, and what it could not and why.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h> /* json_t: spool_stat_json's object */
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "usage: mq-stat [-d dir] [--repair] [--json] [queue ...]\n"
                            "  --repair  also mend the queues (the full repair), and say so\n";

struct qstat {
	struct spool_stat st;
	struct spool_repair rep;
	bool ok;              /* the queue could be read */
	char **corrupt;       /* names in its corrupt/, when there are any */
};

static char *
human(int64_t b, char *buf, size_t len)
{
	const char *u = "BKMGT";
	double v = (double)b;
	while (v >= 1024 && u[1])
		v /= 1024, u++;
	snprintf(buf, len, *u == 'B' ? "%.0f%c" : "%.1f%c", v, *u);
	return buf;
}

/* The figures of queue: from what was counted already, or counted now. */
static bool
figures(spool *sp, char **list, size_t nq, const struct qstat *st, const char *queue,
        struct spool_stat *out)
{
	struct spool_err e = {0};
	for (size_t i = 0; i < nq; i++)
		if (strcmp(list[i], queue) == 0) {
			*out = st[i].st;
			return st[i].ok;
		}
	spool_queue *q = spool_queue_open(sp, queue, 0, &e);
	bool ok = q && spool_stat(q, out, &e) == 0;
	spool_queue_close(q);
	return ok;
}

/* Every topic with its subscribers and their backlog (of the queues asked
 * for, if any were). */
static void
print_topics(spool *sp, char **list, size_t nq, const struct qstat *st, bool all)
{
	struct spool_err e = {0};
	char **topics = spool_topics(sp, &e);
	bool head = false;
	for (char **t = topics; t && *t; t++) {
		char **subs = spool_topic_subscribers(sp, *t, &e);
		struct spool_topic_info ti;
		bool any = false;
		for (char **q = subs; q && *q; q++) {
			bool asked = all;
			for (size_t i = 0; !asked && i < nq; i++)
				asked = strcmp(list[i], *q) == 0;
			if (!asked)
				continue;
			if (!head)
				printf("\n%-16s %-16s %7s %7s %8s %7s %7s\n", "TOPIC", "SUBSCRIBER", "READY",
				       "DELAYED", "INFLIGHT", "DEAD", "COPIES");
			head = any = true;
			struct spool_stat f;
			long copies = spool_topic_copies(sp, *t, *q);
			if (figures(sp, list, nq, st, *q, &f))
				printf("%-16s %-16s %7ld %7ld %8ld %7ld %7ld\n", *t, *q, f.n[SPOOL_READY],
				       f.n[SPOOL_DELAYED], f.n[SPOOL_CLAIMED], f.n[SPOOL_DEAD], copies);
			else
				printf("%-16s %-16s %7s %7s %8s %7s %7ld (the queue is gone)\n", *t, *q, "-", "-",
				       "-", "-", copies);
		}
		if (all && spool_topic_info(sp, *t, &ti, &e) == 0) {
			if (!any && !ti.keep)
				printf("topic %s: no subscribers: what is sent to it is refused\n", *t);
			if (ti.keep && (ti.kept || !any))
				printf("topic %s: keeps what it is sent until its first subscriber: %ld kept\n",
				       *t, ti.kept);
		}
		for (char **q = subs; any && q && *q; q++) {
			long c = spool_topic_copies(sp, *t, *q);
			if (c)
				printf("topic %s: %ld messages copied into %s instead of linked (another file "
				       "system, or the link limit)\n", *t, c, *q);
		}
		spool_strv_free(subs);
	}
	spool_strv_free(topics);
}

static void
print_repairs(const char *name, const struct spool_repair *r)
{
	char buf[256] = "";
	size_t k = 0;
	if (r->leases)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld expired leases taken back", r->leases);
	if (r->expired)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld expired messages moved to dead/",
		                      r->expired);
	if (r->tmp)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld abandoned tmp/ files removed", r->tmp);
	if (r->done)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld kept messages past keep-acked removed",
		                      r->done);
	if (r->ids)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld old dedup markers removed", r->ids);
	if (r->dead)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld dead letters past dead-retention "
		                      "removed", r->dead);
	if (r->corrupt)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld files that are not messages moved "
		                      "to corrupt/", r->corrupt);
	if (r->keys)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld keys whose head was lost handed on",
		                      r->keys);
	if (k)
		printf("repaired %s: %s\n", name, buf + 2);
}

/* The full repair of one queue, opened apart for it (the figures are read
 * through a handle that creates nothing); what could not be mended, and
 * why, is said on stderr.  The exit code so far, or the worse one. */
static int
repair_queue(spool *sp, const char *name, struct spool_repair *r, int rc)
{
	struct spool_err e = {0};
	spool_queue *q = spool_queue_open(sp, name, 0, &e);
	if (!q || spool_repair(q, SPOOL_REPAIR_FULL, r, &e) != 0) {
		cli_warn("cannot repair %s: %s", name, e.msg);
		spool_queue_close(q);
		return rc ? rc : e.code;
	}
	spool_queue_close(q);
	if (!r->failed)
		return rc;
	cli_warn("cannot repair %s: %ld entries could not be mended: %s", name, r->failed,
	         strerror(r->err));
	return rc ? rc : spool_errno_code(r->err);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'J'}, {"repair", no_argument, NULL, 'R'}, CLI_LONG_HELP,
		{NULL, 0, NULL, 0}};
	struct spool_err e = {0};
	const char *dir = NULL;
	int json = 0, repair = 0, c, rc = 0;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'h': cli_usage(1);
		case 'J': json = 1; break;
		case 'R': repair = 1; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	for (int i = 0; i < argc; i++)
		if (!spool_queue_name_ok(argv[i]))
			cli_die(EX_USAGE, "bad queue name '%s'", spool_printable(argv[i]));

	spool *sp = spool_open(dir, 0, &e);
	if (!sp && e.code == EX_NOTFOUND) /* a typo, not an empty spool */
		e.code = EX_NOINPUT;
	if (!sp)
		cli_fail(&e);
	/* interrupted publishes first: their links are in the queues' tmp/ */
	struct spool_topics_repair trep = {0};
	if (sp && spool_topics_repair(sp, &trep, &e) != 0) {
		cli_error(&e);
		rc = e.code;
	}
	char **names = NULL;
	if (argc == 0 && sp && !(names = spool_queues(sp, &e)))
		cli_fail(&e);
	char **list = argc ? argv : names;
	size_t nq = 0;
	while (list && list[nq] && (argc == 0 || (int)nq < argc))
		nq++;

	struct qstat *st = calloc(nq + 1, sizeof *st);
	if (!st)
		cli_die(EX_OSERR, "out of memory");
	for (size_t i = 0; i < nq; i++) {
		spool_queue *q = spool_queue_open(sp, list[i], SPOOL_LOOK, &e);
		if (!q) {
			cli_error(&e);
			rc = e.code == EX_NOTFOUND ? EX_NOTFOUND : e.code;
			continue;
		}
		if (repair) /* the figures come all the same, mended or not */
			rc = repair_queue(sp, list[i], &st[i].rep, rc);
		if (spool_stat(q, &st[i].st, &e) != 0 ||
		    (st[i].st.corrupt && !(st[i].corrupt = spool_corrupt_list(q, &e)))) {
			cli_error(&e);
			rc = e.code;
		} else {
			st[i].ok = true;
		}
		spool_queue_close(q);
	}

	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < nq; i++) {
			if (!st[i].ok)
				continue;
			json_t *o = spool_stat_json(list[i], &st[i].st, &st[i].rep), *files = json_array();
			for (char **n = st[i].corrupt; n && *n; n++)
				json_array_append_new(files, json_string(spool_printable(*n)));
			json_object_set_new(o, "corrupt_files", files);
			json_object_set_new(o, "paused", json_boolean(st[i].st.paused));
			json_object_set_new(json_object_get(o, "repaired"), "dead_removed",
			                    json_integer(st[i].rep.dead));
			char **tp = spool_queue_topics(sp, list[i], &e);
			if (tp && tp[0]) { /* the topics it subscribes to */
				json_t *ta = json_array();
				for (char **t = tp; *t; t++)
					json_array_append_new(ta, json_pack("{s:s, s:I}", "topic", *t, "copies",
					                      (json_int_t)spool_topic_copies(sp, *t, list[i])));
				json_object_set_new(o, "topics", ta);
			}
			spool_strv_free(tp);
			json_array_append_new(a, o);
		}
		json_dumpf(a, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(a);
	} else if (nq) {
		char age[32], bytes[32];
		printf("%-16s %7s %7s %8s %7s %7s %7s %7s %8s\n", "QUEUE", "READY", "DELAYED", "INFLIGHT",
		       "EXPIRED", "DEAD", "KEPT", "OLDEST", "BYTES");
		for (size_t i = 0; i < nq; i++) {
			const struct spool_stat *s = &st[i].st;
			int64_t oldest = s->oldest_by[SPOOL_READY];
			if (!st[i].ok)
				continue;
			printf("%-16s %7ld %7ld %8ld %7ld %7ld %7ld %7s %8s\n", list[i], s->n[SPOOL_READY],
			       s->n[SPOOL_DELAYED], s->n[SPOOL_CLAIMED], s->lapsed + st[i].rep.leases,
			       s->n[SPOOL_DEAD],
			       s->n[SPOOL_DONE], oldest ? spool_fmt_age(s->now - oldest, age, sizeof age) : "-",
			       human(s->bytes, bytes, sizeof bytes));
		}
		printf("\nready backlog by age (minutes)\n%-16s %6s", "QUEUE", "T");
		for (size_t b = 0; b < SPOOL_STAT_NB - 1; b++)
			printf(" %5d", spool_stat_buckets[b]);
		printf(" %5d+\n", spool_stat_buckets[SPOOL_STAT_NB - 2]);
		for (size_t i = 0; i < nq; i++) {
			if (!st[i].ok)
				continue;
			printf("%-16s %6ld", list[i], st[i].st.n[SPOOL_READY]);
			for (size_t b = 0; b < SPOOL_STAT_NB; b++)
				printf(" %5ld", st[i].st.hist[b]);
			putchar('\n');
		}
		for (size_t i = 0; i < nq; i++)
			print_repairs(list[i], &st[i].rep);
		for (size_t i = 0; i < nq; i++) {
			const struct spool_stat *s = &st[i].st;
			if (!st[i].ok || !s->keys)
				continue;
			printf("keys %s: %ld keys, %ld held, %ld messages waiting behind their head", list[i],
			       s->keys, s->keys_held, s->n[SPOOL_WAITING]);
			if (s->oldest_held)
				printf("; oldest held: %s (%s)", spool_printable(s->oldest_key),
				       spool_fmt_age(s->now - s->oldest_held, age, sizeof age));
			putchar('\n');
		}
		for (size_t i = 0; i < nq; i++)
			if (st[i].ok && st[i].st.paused)
				printf("paused %s: consumers claim nothing until mq-pause -u %s\n", list[i],
				       list[i]);
		for (size_t i = 0; i < nq; i++) {
			if (!st[i].ok || !st[i].corrupt)
				continue;
			printf("corrupt %s: %ld files that are not messages, never delivered, in corrupt/:",
			       list[i], st[i].st.corrupt);
			for (char **n = st[i].corrupt; *n; n++)
				printf(" %s", spool_printable(*n));
			putchar('\n');
		}
	}
	if (!json && sp) {
		print_topics(sp, list, nq, st, argc == 0);
		if (trep.completed || trep.undone || trep.delivered)
			printf("repaired topics: %ld interrupted publishes completed, %ld undone, %ld kept "
			       "messages delivered\n", trep.completed, trep.undone, trep.delivered);
	}
	if (fflush(stdout) != 0)
		cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
	for (size_t i = 0; i < nq; i++)
		spool_strv_free(st[i].corrupt);
	free(st);
	spool_strv_free(names);
	spool_close(sp);
	return rc;
}
