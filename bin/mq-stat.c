/* SPDX-License-Identifier: MIT */
/*
 * mq-stat: the state of queues at a glance: counts per state, the oldest
 * ready message, bytes, and the backlog by age (after Postfix's qshape).
 * It only looks: it creates, moves and deletes nothing.  With --repair it
 * also runs the full repair (spool-layout.md 6.10: expired leases, expired
 * messages, abandoned tmp/ files, old dedup markers and kept messages) and
 * says what it mended, and what it could not and why.  With -w it stays,
 * refreshing like top(1), and counts from inotify what happens between two
 * refreshes (spool_tally): sends, acks and failures a second.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h> /* json_t: spool_stat_json's object */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static const char usage[] =
	"usage: mq-stat [-d dir] [-w sec] [--repair] [--json] [queue ...]\n"
	"\n"
	"  -d dir    the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -w sec    refresh every sec, like top, with rates (sent, acked, failed)\n"
	"  --json    one JSON array (with -w: one a line, per refresh)\n"
	"  --repair  also mend the queues (the full repair), and say so\n";

struct qstat {
	struct spool_stat st;
	double rate[3];       /* -w: sent, acked, failed a second since the last refresh */
	bool rated;           /* rate[] holds figures (not the first refresh, no events lost) */
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

/* One look at the queues of list: the figures, the repairs if asked. */
static int
collect(spool *sp, char **list, size_t nq, struct qstat *st, bool repair)
{
	struct spool_err e = {0};
	int rc = 0;
	for (size_t i = 0; i < nq; i++) {
		spool_strv_free(st[i].corrupt);
		st[i].corrupt = NULL;
		st[i].ok = false;
		memset(&st[i].rep, 0, sizeof st[i].rep);
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
	return rc;
}

static json_t *
to_json(spool *sp, char **list, size_t nq, const struct qstat *st)
{
	struct spool_err e = {0};
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
		if (st[i].rated)
			json_object_set_new(o, "rates", json_pack("{s:f, s:f, s:f}", "sent", st[i].rate[0],
			                    "acked", st[i].rate[1], "failed", st[i].rate[2]));
		json_array_append_new(a, o);
	}
	return a;
}

static const char *
rate(double r, char *buf, size_t len)
{
	if (r >= 9999.5)
		snprintf(buf, len, "%.1fk", r / 1000);
	else
		snprintf(buf, len, r >= 100 || r == 0 ? "%.0f" : "%.1f", r);
	return buf;
}

static void
print_text(spool *sp, char **list, size_t nq, const struct qstat *st, bool rates)
{
	char age[32], bytes[32], when[40];
	printf("spool %s at %s\n", spool_root(sp), spool_fmt_time(spool_now(), when, sizeof when));
	if (!nq)
		return;
	printf("%-16s %7s %7s %8s %7s %7s %7s %7s %8s", "QUEUE", "READY", "DELAYED", "INFLIGHT",
	       "LAPSED", "DEAD", "KEPT", "OLDEST", "BYTES");
	if (rates)
		printf(" %7s %7s %8s", "SENT/s", "ACKED/s", "FAILED/s");
	putchar('\n');
	for (size_t i = 0; i < nq; i++) {
		const struct spool_stat *s = &st[i].st;
		int64_t oldest = s->oldest_by[SPOOL_READY];
		if (!st[i].ok)
			continue;
		printf("%-16s %7ld %7ld %8ld %7ld %7ld %7ld %7s %8s", list[i], s->n[SPOOL_READY],
		       s->n[SPOOL_DELAYED], s->n[SPOOL_CLAIMED], s->lapsed + st[i].rep.leases,
		       s->n[SPOOL_DEAD], s->n[SPOOL_DONE],
		       oldest ? spool_fmt_age(s->now - oldest, age, sizeof age) : "-",
		       human(s->bytes, bytes, sizeof bytes));
		if (rates && st[i].rated) {
			char r0[16], r1[16], r2[16];
			printf(" %7s %7s %8s", rate(st[i].rate[0], r0, sizeof r0),
			       rate(st[i].rate[1], r1, sizeof r1), rate(st[i].rate[2], r2, sizeof r2));
		} else if (rates) {
			printf(" %7s %7s %8s", "-", "-", "-");
		}
		putchar('\n');
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
			printf("paused %s: consumers claim nothing until mq-pause -u %s\n", list[i], list[i]);
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

/* -w: the queues asked for, or every queue as it is now (they come and go). */
struct watchset {
	char **asked;          /* NULL: every queue */
	char **names;          /* the list now */
	size_t nq;
	struct qstat *st;
	spool_tally *tally;
	char **slots;          /* the queue counted in each tally slot */
	size_t nslots;
	struct spool_tally_counts *counts, *prev;
};

static size_t
slot_of(struct watchset *w, spool *sp, const char *name)
{
	struct spool_err e = {0};
	for (size_t i = 0; i < w->nslots; i++)
		if (strcmp(w->slots[i], name) == 0)
			return i;
	char **v = realloc(w->slots, (w->nslots + 1) * sizeof *v);
	struct spool_tally_counts *c = realloc(w->counts, (w->nslots + 1) * sizeof *c);
	struct spool_tally_counts *p = c ? realloc(w->prev, (w->nslots + 1) * sizeof *p) : NULL;
	if (v)
		w->slots = v;
	if (c)
		w->counts = c;
	if (p)
		w->prev = p;
	if (!v || !c || !p || !(v[w->nslots] = strdup(name)))
		cli_die(EX_OSERR, "out of memory");
	memset(&c[w->nslots], 0, sizeof *c);
	memset(&p[w->nslots], 0, sizeof *p);
	c[w->nslots].lost = true; /* no figure before a whole interval */
	spool_queue *q = spool_queue_open(sp, name, SPOOL_LOOK, &e);
	if (!q || spool_tally_add(w->tally, q, w->nslots, &e) != 0)
		cli_warn("cannot count events of %s: %s", name, e.msg);
	spool_queue_close(q);
	return w->nslots++;
}

static int
watch_loop(spool *sp, char **asked, size_t nasked, int64_t every, bool json)
{
	struct spool_err e = {0};
	struct watchset w = {.asked = asked};
	bool tty = isatty(1);
	int rc = 0;
	if (!(w.tally = spool_tally_new(&e)))
		cli_fail(&e);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	int64_t last = spool_now();
	while (!stop) {
		char **list = asked;
		size_t nq = nasked;
		if (!asked) {
			spool_strv_free(w.names);
			if (!(w.names = spool_queues(sp, &e)))
				cli_fail(&e);
			list = w.names;
			for (nq = 0; list[nq]; nq++)
				;
		}
		struct qstat *st = calloc(nq + 1, sizeof *st);
		if (!st)
			cli_die(EX_OSERR, "out of memory");
		size_t *slot = calloc(nq + 1, sizeof *slot);
		if (!slot)
			cli_die(EX_OSERR, "out of memory");
		for (size_t i = 0; i < nq; i++)
			slot[i] = slot_of(&w, sp, list[i]);
		/* count what happened since the last refresh, then look */
		spool_tally_read(w.tally, w.counts, w.nslots);
		int64_t now = spool_now();
		double secs = (double)(now - last) / 1000;
		rc = collect(sp, list, nq, st, false);
		for (size_t i = 0; i < nq; i++) {
			struct spool_tally_counts *c = &w.counts[slot[i]], *p = &w.prev[slot[i]];
			st[i].rated = !c->lost && secs > 0;
			if (st[i].rated) {
				st[i].rate[0] = (double)(c->sent - p->sent) / secs;
				st[i].rate[1] = (double)(c->acked - p->acked) / secs;
				st[i].rate[2] = (double)(c->failed - p->failed) / secs;
			}
			c->lost = false;
			*p = *c;
		}
		last = now;
		if (json) {
			json_t *a = to_json(sp, list, nq, st);
			json_dumpf(a, stdout, JSON_COMPACT);
			putchar('\n');
			json_decref(a);
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout); /* home, clear: a refresh in place */
			print_text(sp, list, nq, st, true);
			if (!tty)
				putchar('\n');
		}
		for (size_t i = 0; i < nq; i++)
			spool_strv_free(st[i].corrupt);
		free(st);
		free(slot);
		if (fflush(stdout) != 0)
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
		/* until the next refresh, keep the events read: the kernel's queue is finite */
		int64_t until = now + every;
		while (!stop && spool_now() < until) {
			struct pollfd pfd = {spool_tally_fd(w.tally), POLLIN, 0};
			int64_t left = until - spool_now();
			if (poll(&pfd, 1, left > 0 ? (int)left : 0) > 0)
				spool_tally_read(w.tally, w.counts, w.nslots);
		}
	}
	for (size_t i = 0; i < w.nslots; i++)
		free(w.slots[i]);
	free(w.slots);
	free(w.counts);
	free(w.prev);
	spool_strv_free(w.names);
	spool_tally_free(w.tally);
	return rc;
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
	int64_t every = 0;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:hw:", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'h': cli_usage(1);
		case 'J': json = 1; break;
		case 'R': repair = 1; break;
		case 'V': cli_version();
		case 'w':
			if ((every = spool_parse_duration(optarg)) < 100)
				cli_die(EX_USAGE, "-w: bad interval '%s' (seconds, at least 0.1: 2, 500ms)",
				        spool_printable(optarg));
			break;
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (every && repair)
		cli_die(EX_USAGE, "-w only looks: it does not go with --repair");
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
	if (spool_topics_repair(sp, &trep, &e) != 0) {
		cli_error(&e);
		rc = e.code;
	}
	if (every) {
		int wrc = watch_loop(sp, argc ? argv : NULL, (size_t)argc, every, json);
		spool_close(sp);
		return rc ? rc : wrc;
	}
	char **names = NULL;
	if (argc == 0 && !(names = spool_queues(sp, &e)))
		cli_fail(&e);
	char **list = argc ? argv : names;
	size_t nq = 0;
	while (list && list[nq] && (argc == 0 || (int)nq < argc))
		nq++;

	struct qstat *st = calloc(nq + 1, sizeof *st);
	if (!st)
		cli_die(EX_OSERR, "out of memory");
	int crc = collect(sp, list, nq, st, repair);
	rc = crc ? crc : rc;
	if (json) {
		json_t *a = to_json(sp, list, nq, st);
		json_dumpf(a, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(a);
	} else {
		print_text(sp, list, nq, st, false);
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
