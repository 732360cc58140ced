/* SPDX-License-Identifier: MIT */
/*
 * mq-sub: subscriptions of queues to topics, for mq-send --topic.  A
 * subscriber is an ordinary queue that gets its own copy (a hard link) of
 * every message published to the topic.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-sub [-d dir] add topic queue ...\n"
	"       mq-sub [-d dir] rm topic queue ...\n"
	"       mq-sub [-d dir] ls [topic]\n"
	"       mq-sub [-d dir] keep | refuse topic\n"
	"\n"
	"  -d dir   the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  add      subscribe the queues to topic (made if missing)\n"
	"  rm       unsubscribe them (what they hold stays)\n"
	"  ls       print TOPIC QUEUE pairs, one a line\n"
	"  keep     topic keeps what it is sent until its first subscriber\n"
	"  refuse   topic refuses sends while it has no subscriber (the default)\n";

static void
check_name(const char *what, const char *name)
{
	if (!spool_queue_name_ok(name))
		cli_die(EX_USAGE, "bad %s name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		        "not starting with . or -", what, spool_printable(name));
}

/* Print TOPIC QUEUE lines for one topic: how many. */
static long
list(spool *sp, const char *topic)
{
	struct spool_err e = {0};
	char **subs = spool_topic_subscribers(sp, topic, &e);
	long n = 0;
	if (!subs)
		cli_fail(&e);
	for (char **s = subs; *s; s++, n++)
		printf("%s %s\n", topic, *s);
	spool_strv_free(subs);
	return n;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	struct spool_err e = {0};
	const char *dir = NULL;
	int c, rc = 0;

	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "+d:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'h': cli_usage(1);
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 1)
		cli_usage(0);
	const char *cmd = argv[0];
	bool add = strcmp(cmd, "add") == 0, rm = strcmp(cmd, "rm") == 0;
	bool ls = strcmp(cmd, "ls") == 0, keep = strcmp(cmd, "keep") == 0;
	bool refuse = strcmp(cmd, "refuse") == 0;
	if (((add || rm) && argc < 3) || (ls && argc > 2) || ((keep || refuse) && argc != 2) ||
	    !(add || rm || ls || keep || refuse))
		cli_usage(0);
	/* every name first: a bad one changes nothing */
	for (int i = 1; i < argc; i++)
		check_name(i == 1 ? "topic" : "queue", argv[i]);

	spool *sp = spool_open(dir, add || keep ? SPOOL_CREATE : 0, &e);
	if (!sp) {
		if (e.code != EX_NOTFOUND || add || keep)
			cli_fail(&e);
		if (ls)
			return EX_NOTHING; /* no spool: no subscriptions */
		if (refuse)
			return 0;
		for (int i = 2; i < argc; i++)
			cli_warn("queue %s is not subscribed to topic %s", argv[i], argv[1]);
		return EX_NOTFOUND;
	}
	if (ls) {
		long n = 0;
		if (argc == 2) {
			n = list(sp, argv[1]);
		} else {
			char **topics = spool_topics(sp, &e);
			if (!topics)
				cli_fail(&e);
			for (char **t = topics; *t; t++)
				n += list(sp, *t);
			spool_strv_free(topics);
		}
		if (fflush(stdout) != 0)
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
		rc = n ? 0 : EX_NOTHING;
	} else if (keep || refuse) {
		if (spool_topic_keep(sp, argv[1], keep, &e) != 0)
			cli_fail(&e);
	} else {
		for (int i = 2; i < argc; i++) {
			int r = add ? spool_subscribe(sp, argv[1], argv[i], &e) :
			        spool_unsubscribe(sp, argv[1], argv[i], &e);
			if (r < 0) {
				cli_error(&e);
				/* the worst wins, not found the least */
				if (rc == 0 || (rc == EX_NOTFOUND && e.code != EX_NOTFOUND))
					rc = e.code;
			}
		}
		/* what the topic kept goes to all the first subscribers alike */
		if (add && spool_topic_deliver_kept(sp, argv[1], &e) < 0) {
			cli_error(&e);
			rc = rc ? rc : e.code;
		}
	}
	spool_close(sp);
	return rc;
}
