/* SPDX-License-Identifier: MIT */
/*
 * mq-pause: pause queues (consumers claim nothing, senders still send) or,
 * with -u, resume them.  Pausing a paused queue, or resuming one that is not,
 * changes nothing and is no error.
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-pause [-u] [-d dir] queue ...\n"
	"\n"
	"  -d dir   the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -u       resume: remove the pause marker\n";

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"resume", no_argument, NULL, 'u'}, CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	const char *dir = NULL;
	int resume = 0, c, rc = 0;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:hu", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'h': cli_usage(1);
		case 'u': resume = 1; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 1)
		cli_usage(0);
	for (int i = 0; i < argc; i++) /* every name first: all or none are touched */
		if (!spool_queue_name_ok(argv[i]))
			cli_die(EX_USAGE, "bad queue name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
			                  "not starting with . or -", spool_printable(argv[i]));
	for (int i = 0; i < argc; i++) {
		struct spool_err e = {0};
		spool *sp = NULL;
		spool_queue *q = cli_queue(&sp, dir, argv[i], 0);
		if (!q) {
			cli_warn("queue %s: no such queue", argv[i]);
			if (EX_NOTFOUND > rc)
				rc = EX_NOTFOUND;
		} else if ((resume ? spool_queue_resume(q, &e) : spool_queue_pause(q, &e)) != 0) {
			cli_error(&e);
			if (e.code > rc)
				rc = e.code;
		}
		spool_queue_close(q);
		spool_close(sp);
	}
	return rc;
}
