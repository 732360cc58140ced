/* SPDX-License-Identifier: MIT */
/*
 * mq-nack: give claimed messages back for a later retry (the queue's backoff,
 * or --delay), or bury them at once with --dead REASON.  A message past its
 * queue's max-attempts goes to dead/ instead of back.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-nack [-d dir] [--delay dur | --dead reason] queue id|path|- ...\n"
	"\n"
	"  -d dir          the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  --delay dur     retry after dur (one word: 30s, 5m, 2h) instead of the backoff\n"
	"  --dead reason   bury at once in dead/, with reason as its Dead-Reason\n"
	"  id|path|-       ids, or cur/ paths (mq-recv -c); - reads them from stdin\n";

static spool_queue *q;
static int64_t delay = -1;
static const char *dead;

static int
nack(const char *arg, void *ctx)
{
	struct spool_err e = {0};
	(void)ctx;
	spool_msg *m = spool_msg_find(q, arg, &e);
	int r = -1;
	if (m)
		r = dead ? spool_bury(m, dead, "mq-nack --dead", &e) : spool_nack(m, delay, "mq-nack", &e);
	if (r == 1)
		cli_warn("%s: max attempts reached: moved to dead/", spool_msg_id(m));
	spool_msg_free(m);
	if (r >= 0)
		return 0;
	cli_error(&e);
	return e.code;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"dead", required_argument, NULL, 'X'},
		{"delay", required_argument, NULL, 'D'},
		CLI_LONG_HELP,
		{NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	int c;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'D': delay = cli_duration("--delay", optarg); break;
		case 'h': cli_usage(1);
		case 'V': cli_version();
		case 'X':
			if (!*(dead = optarg))
				cli_die(EX_USAGE, "--dead: give a reason");
			break;
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 2)
		cli_usage(0);
	if (dead && delay >= 0)
		cli_die(EX_USAGE, "--delay and --dead: give one");
	spool *sp;
	if (!(q = cli_queue(&sp, dir, argv[0], 0)))
		cli_die(EX_NOTFOUND, "queue %s: no such queue", argv[0]);
	int rc = cli_each(argv + 1, argc - 1, nack, NULL);
	spool_queue_close(q);
	spool_close(sp);
	return rc;
}
