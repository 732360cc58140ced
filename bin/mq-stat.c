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
	if (r->corrupt)
		k += (size_t)snprintf(buf + k, sizeof buf - k, ", %ld files that are not messages moved "
		                      "to corrupt/", r->corrupt);
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
			if (!st[i].ok || !st[i].corrupt)
				continue;
			printf("corrupt %s: %ld files that are not messages, never delivered, in corrupt/:",
			       list[i], st[i].st.corrupt);
			for (char **n = st[i].corrupt; *n; n++)
				printf(" %s", spool_printable(*n));
			putchar('\n');
		}
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
