/* SPDX-License-Identifier: MIT */
/*
 * mq-ack: finish claimed messages (given by id or by the path mq-recv -c
 * printed), or with --extend keep them longer.  Exit 2 when a lease was lost:
 * the message may be delivered again, and the caller must know.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-ack [-d dir] [--extend dur] queue id|path|- ...\n"
	"\n"
	"  -d dir          the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  --extend dur    keep the claims: their leases end dur from now (30s, 5m)\n"
	"  id|path|-       ids, or cur/ paths (mq-recv -c); - reads them from stdin\n";

static spool_queue *q;
static int64_t extend = -1;

static int
ack(const char *arg, void *ctx)
{
	struct spool_err e = {0};
	(void)ctx;
	spool_msg *m = spool_msg_find(q, arg, &e);
	int rc = 0;
	if (!m || (extend >= 0 ? spool_extend(m, extend, &e) : spool_ack(m, &e)))
		rc = -1;
	else if (extend >= 0)
		printf("%s\n", spool_msg_path(m));
	spool_msg_free(m);
	if (rc == 0)
		return 0;
	cli_error(&e);
	return e.code;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"extend", required_argument, NULL, 'E'}, CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	const char *dir = NULL;
	int c;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'E': extend = cli_duration("--extend", optarg); break;
		case 'h': cli_usage(1);
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 2)
		cli_usage(0);
	spool *sp;
	if (!(q = cli_queue(&sp, dir, argv[0], 0)))
		cli_die(EX_NOTFOUND, "queue %s: no such queue", argv[0]);
	int rc = cli_each(argv + 1, argc - 1, ack, NULL);
	spool_queue_close(q);
	spool_close(sp);
	return rc;
}
