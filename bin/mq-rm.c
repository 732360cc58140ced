/* SPDX-License-Identifier: MIT */
/*
 * mq-rm: delete messages of a queue, by id or every one in the given states.
 * A claimed message belongs to its consumer and is left alone unless -f.
 * Prints each id it deleted.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-rm [-fn] [-d dir] [-s state] queue id ... | -\n"
	"       mq-rm [-fn] [-d dir] -s state ... --all queue\n"
	"\n"
	"  -d dir     the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -f         also delete claimed messages\n"
	"  -n         print what would be deleted, delete nothing\n"
	"  -s state   ready, delayed, waiting, dead, done (claimed: with -f); may repeat\n"
	"  --all      every message in the states given\n";

struct sel {
	char **ids;     /* wanted ids, NULL: every one (--all) */
	size_t nids;
	bool *found;
	int force, dry_run;
	spool_queue *q;
	long removed;
	int rc;
	struct cli_progress progress;
};

static int
collect(const char *arg, void *ctx)
{
	struct sel *s = ctx;
	if (!spool_id_ok(arg)) /* before anything is deleted */
		cli_die(EX_USAGE, "bad id '%s': want a message id (26 characters of 0-9 A-Z)",
		        spool_printable(arg));
	cli_strv_add(&s->ids, &s->nids, arg);
	return 0;
}

static int
rm(const struct spool_entry *en, void *arg)
{
	struct sel *s = arg;
	struct spool_err e = {0};
	bool want = !s->ids;
	for (size_t i = 0; i < s->nids && !want; i++)
		if (strcmp(s->ids[i], en->id) == 0)
			want = s->found[i] = true;
	if (!want)
		return 0;
	if (en->state == SPOOL_CLAIMED && !s->force) {
		spool_fail(&e, EX_TEMPFAIL, "%s: claimed by a consumer: not deleted (-f deletes it)",
		           en->id);
	} else if (s->dry_run || spool_rm(s->q, en, s->force, &e) == 0) {
		printf("%s\n", en->id);
		s->removed++;
		cli_progress_tick(&s->progress, 1);
		return 0;
	}
	cli_error(&e);
	if (e.code > s->rc)
		s->rc = e.code;
	return 0;
}

static unsigned
state_bit(const char *arg)
{
	static const struct {
		const char *name;
		enum spool_state st;
	} v[] = {{"ready", SPOOL_READY}, {"delayed", SPOOL_DELAYED}, {"dead", SPOOL_DEAD},
	         {"done", SPOOL_DONE}, {"claimed", SPOOL_CLAIMED}, {"waiting", SPOOL_WAITING}};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		if (strcmp(arg, v[i].name) == 0)
			return 1u << v[i].st;
	cli_die(EX_USAGE, "-s: bad state '%s' (want ready, delayed, waiting, dead, done or claimed)",
	        spool_printable(arg));
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"all", no_argument, NULL, 'A'},
		{"dry-run", no_argument, NULL, 'n'},
		{"force", no_argument, NULL, 'f'},
		{"state", required_argument, NULL, 's'},
		CLI_LONG_HELP,
		{NULL, 0, NULL, 0},
	};
	struct sel s = {0};
	struct spool_err e = {0};
	const char *dir = NULL;
	unsigned states = 0;
	int all = 0, c;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:fhns:", longopts, NULL)) != -1) {
		switch (c) {
		case 'A': all = 1; break;
		case 'd': dir = optarg; break;
		case 'f': s.force = 1; break;
		case 'h': cli_usage(1);
		case 'n': s.dry_run = 1; break;
		case 's': states |= state_bit(optarg); break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 1)
		cli_usage(0);
	if ((states & 1u << SPOOL_CLAIMED) && !s.force)
		cli_die(EX_USAGE, "-s claimed: claimed messages belong to their consumers (add -f)");
	if (all && argc > 1)
		cli_die(EX_USAGE, "--all and ids: give one");
	if (all && !states)
		cli_die(EX_USAGE, "--all: say which messages with -s ready, delayed, dead or done");
	if (!all && argc == 1)
		cli_die(EX_USAGE, "say what to delete: ids, -, or -s STATE --all");
	spool *sp;
	if (!(s.q = cli_queue(&sp, dir, argv[0], 0)))
		cli_die(EX_NOTFOUND, "queue %s: no such queue", argv[0]);
	if (!all) {
		cli_each(argv + 1, argc - 1, collect, &s);
		if (!s.ids)
			return EX_NOTHING; /* "-" and an empty stdin */
		if (!(s.found = calloc(s.nids, sizeof *s.found)))
			cli_die(EX_OSERR, "out of memory");
	}
	cli_progress_start(&s.progress, "messages",
	                   s.ids ? (long)s.nids : cli_progress_total(s.q, states));
	if (spool_list(s.q, states, 0, rm, &s, &e) < 0)
		cli_fail(&e);
	cli_progress_end(&s.progress);
	for (size_t i = 0; i < s.nids; i++)
		if (!s.found[i]) {
			cli_warn("%s: no such message in queue %s%s", s.ids[i], argv[0],
			         states ? " (in the states given)" : "");
			if (EX_NOTFOUND > s.rc)
				s.rc = EX_NOTFOUND;
		}
	if (fflush(stdout) != 0)
		cli_die(EX_IOERR, "write to stdout");
	for (size_t i = 0; i < s.nids; i++)
		free(s.ids[i]);
	free(s.ids);
	free(s.found);
	spool_queue_close(s.q);
	spool_close(sp);
	if (s.rc)
		return s.rc;
	return s.removed ? 0 : EX_NOTHING;
}
