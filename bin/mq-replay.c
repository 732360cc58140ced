/* SPDX-License-Identifier: MIT */
/*
 * mq-replay: move dead letters (or, with --from done, kept acked messages)
 * back to new/ with their attempts reset, selected by id, by time or all;
 * with --now, makes waiting (delayed) messages due at once instead, as
 * postqueue -f does.  Prints each id it moved; exit 1 when nothing matched.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-replay [-n] [-d dir] [--all] [--from dead|done] [--since time]\n"
	"                 [--until time] [--to queue] queue [id ... | -]\n"
	"       mq-replay --now [-n] [-d dir] [--all] queue [id ... | -]\n"
	"\n"
	"  -d dir          the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -n              print what would be replayed, move nothing\n"
	"  --all           every message (of dead/, or with --now: every delayed one)\n"
	"  --from state    replay from dead (default) or done\n"
	"  --since time    only those buried (or acked) since time (2h, 7d, @EPOCH, ISO)\n"
	"  --until time    only those up to time\n"
	"  --to queue      into another queue\n"
	"  --now           make waiting (delayed) messages due at once, as postqueue -f\n";

struct sel {
	char **ids;          /* wanted ids, or NULL for every one */
	size_t nids;
	int64_t since, until;
	int dry_run;
	int now;             /* --now: make delayed messages due, in their queue */
	spool_queue *q, *to;
	long moved;
	int rc;
	struct cli_progress progress;
};

static int
collect(const char *arg, void *ctx)
{
	struct sel *s = ctx;
	cli_strv_add(&s->ids, &s->nids, arg);
	return 0;
}

static int
wanted(const struct sel *s, const char *id)
{
	if (!s->ids)
		return 1;
	for (size_t i = 0; i < s->nids; i++)
		if (s->ids[i] && strcmp(s->ids[i], id) == 0)
			return 1;
	return 0;
}

static int
replay(const struct spool_entry *en, void *arg)
{
	struct sel *s = arg;
	struct spool_err e = {0};
	if (!wanted(s, en->id) || (s->since && en->t < s->since) || (s->until && en->t > s->until))
		return 0;
	if (!s->dry_run && (s->now ? spool_due_now(s->q, en, 0, &e)
	                           : spool_replay(s->q, en, s->to, 0, &e)) != 0) {
		cli_error(&e);
		if (e.code > s->rc)
			s->rc = e.code;
		return 0;
	}
	printf("%s\n", en->id);
	s->moved++;
	cli_progress_tick(&s->progress, 1);
	return 0;
}

/* A time, or a duration meaning that long ago. */
static int64_t
when(const char *opt, const char *arg)
{
	int64_t t = spool_parse_time(arg);
	if (t < 0) {
		int64_t d = spool_parse_duration(arg);
		if (d < 0)
			cli_die(EX_USAGE, "%s: bad time '%s' (want 2h, 7d, @EPOCH or 2026-11-21T22:00:00Z)",
			        opt, arg);
		t = spool_now() - d;
	}
	return t;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"all", no_argument, NULL, 'A'},
		{"dry-run", no_argument, NULL, 'n'},
		{"from", required_argument, NULL, 'F'},
		{"now", no_argument, NULL, 'N'},
		{"since", required_argument, NULL, 'S'},
		{"to", required_argument, NULL, 'T'},
		{"until", required_argument, NULL, 'U'},
		CLI_LONG_HELP,
		{NULL, 0, NULL, 0},
	};
	struct sel s = {0};
	struct spool_err e = {0};
	const char *dir = NULL, *to = NULL;
	enum spool_state from = SPOOL_DEAD;
	int all = 0, from_set = 0, c;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:hn", longopts, NULL)) != -1) {
		switch (c) {
		case 'A': all = 1; break;
		case 'd': dir = optarg; break;
		case 'F':
			from_set = 1;
			if (strcmp(optarg, "dead") == 0)
				from = SPOOL_DEAD;
			else if (strcmp(optarg, "done") == 0)
				from = SPOOL_DONE;
			else
				cli_die(EX_USAGE, "--from: want dead or done, not '%s'", optarg);
			break;
		case 'h': cli_usage(1);
		case 'n': s.dry_run = 1; break;
		case 'N': s.now = 1; break;
		case 'S': s.since = when("--since", optarg); break;
		case 'T': to = optarg; break;
		case 'U': s.until = when("--until", optarg); break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 1)
		cli_usage(0);
	if (argc > 1 && all)
		cli_die(EX_USAGE, "--all and ids: give one");
	if (s.now && (from_set || to || s.since || s.until))
		cli_die(EX_USAGE, "--now: with ids or --all only (not --from, --to, --since, --until)");
	if (argc == 1 && !all && !s.since && !s.until)
		cli_die(EX_USAGE, "say what to replay: ids, -, --all, --since or --until");
	if (argc > 1) {
		cli_each(argv + 1, argc - 1, collect, &s);
		if (!s.ids)
			return EX_NOTHING; /* "-" and an empty stdin */
	}

	spool *sp, *sp2 = NULL;
	if (!(s.q = cli_queue(&sp, dir, argv[0], 0)))
		cli_die(EX_NOTFOUND, "queue %s: no such queue", argv[0]);
	if (to && !spool_queue_name_ok(to))
		cli_die(EX_USAGE, "--to: bad queue name '%s'", spool_printable(to));
	if (to && !s.dry_run && !(s.to = cli_queue(&sp2, dir, to, SPOOL_CREATE)))
		cli_die(EX_CANTCREAT, "queue %s: cannot create", to);
	unsigned states = s.now ? 1u << SPOOL_DELAYED : 1u << from;
	cli_progress_start(&s.progress, "messages", s.ids ? (long)s.nids
	                   : s.since || s.until ? 0 : cli_progress_total(s.q, states));
	if (spool_list(s.q, states, 0, replay, &s, &e) < 0)
		cli_fail(&e);
	cli_progress_end(&s.progress);
	if (fflush(stdout) != 0)
		cli_die(EX_IOERR, "write to stdout");
	for (size_t i = 0; i < s.nids; i++)
		free(s.ids[i]);
	free(s.ids);
	spool_queue_close(s.to);
	spool_close(sp2);
	spool_queue_close(s.q);
	spool_close(sp);
	if (s.rc)
		return s.rc;
	return s.moved ? 0 : EX_NOTHING;
}
