/* SPDX-License-Identifier: MIT */
/*
 * mq-peek: look at a queue without claiming anything: one line per message
 * in every state, or one whole message (like postcat).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-peek [-d dir] [-s state] [--json] queue [id]\n"
	"       mq-peek [-d dir] [--json] --topic topic\n"
	"\n"
	"  -d dir          the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -s state        only ready, delayed, claimed, dead or done; may repeat\n"
	"  --json          JSON instead (with an id: the message, headers and body)\n"
	"  --topic topic   the subscribers of topic, with their backlog\n"
	"  id              print that message whole, headers and body\n";

struct ctx {
	const char *id;    /* print this one message whole */
	json_t *json;      /* --json: the array being built */
	json_t *one;       /* --json with an id: that message */
	struct spool_err e;
	long n;
	int64_t now;
	char found[4096];
	spool_queue *q;
};

static int
show(const struct spool_entry *en, void *arg)
{
	struct ctx *c = arg;
	char age[32];
	c->n++;
	if (c->id) {
		if (strcmp(en->id, c->id) != 0)
			return 0;
		snprintf(c->found, sizeof c->found, "%s", en->path);
		if (c->json && !(c->one = spool_message_json(c->q, en, SIZE_MAX, &c->e)))
			return -1;
		return 1;
	}
	if (c->json) {
		json_t *o = spool_entry_json(c->q, en);
		if (!o)
			cli_die(EX_SOFTWARE, "json: cannot encode %s", en->id);
		json_array_append_new(c->json, o);
		return 0;
	}
	/* DUE: how long until a delayed message is due, or a claim's lease ends */
	char due[32] = "-";
	if (en->state == SPOOL_DELAYED || (en->state == SPOOL_CLAIMED && en->t > c->now)) {
		due[0] = '+';
		spool_fmt_age(en->t - c->now, due + 1, sizeof due - 1);
	} else if (en->state == SPOOL_CLAIMED) {
		snprintf(due, sizeof due, "lapsed");
	}
	printf("%-7s %s %5s %6s %3u %8lld %s", spool_state_name(en->state), en->id,
	       spool_fmt_age(c->now - en->created, age, sizeof age), due, en->attempts,
	       (long long)en->body_size, *en->reason ? en->reason : en->line);
	struct spool_failure f; /* a dead letter's status and last words, as mailq shows them */
	if (en->state == SPOOL_DEAD && spool_entry_failure(c->q, en, &f) > 0 && *f.status) {
		const char *last = strrchr(f.stderr_tail, '\n');
		last = last ? last + 1 : f.stderr_tail;
		printf(" (%s%s%.80s)", f.status, *last ? ": " : "", last);
	}
	if (*en->key) /* its ordering key (mq-send --key) */
		printf(" key=%s", spool_printable(en->key));
	putchar('\n');
	return 0;
}

static void
cat(const char *path)
{
	char buf[65536];
	ssize_t r;
	int fd = spool_open_file(AT_FDCWD, path, O_RDONLY, 0, NULL);
	if (fd < 0)
		cli_die(errno == ENOENT ? EX_NOTFOUND : spool_errno_code(errno), "open %s: %s", path,
		        spool_strerror(errno));
	while ((r = read(fd, buf, sizeof buf)) > 0)
		if (fwrite(buf, 1, (size_t)r, stdout) != (size_t)r)
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
	if (r < 0)
		cli_die(EX_IOERR, "read %s: %s", path, strerror(errno));
	close(fd);
}

/* --topic: each subscriber with its backlog; exit 1 when it has none. */
static int
topic(const char *dir, const char *name, int json)
{
	struct spool_err e = {0};
	if (!spool_topic_name_ok(name))
		cli_die(EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		        "not starting with . or -", spool_printable(name));
	spool *sp = spool_open(dir, 0, &e);
	if (!sp && e.code != EX_NOTFOUND)
		cli_fail(&e);
	char **subs = sp ? spool_topic_subscribers(sp, name, &e) : calloc(1, sizeof(char *));
	if (!subs)
		cli_fail(&e);
	json_t *a = json ? json_array() : NULL;
	long n = 0;
	for (char **q = subs; *q; q++, n++) {
		struct spool_stat st = {0};
		spool_queue *qq = spool_queue_open(sp, *q, 0, &e);
		bool ok = qq && spool_stat(qq, &st, &e) == 0;
		spool_queue_close(qq);
		long copies = spool_topic_copies(sp, name, *q);
		if (a) {
			json_t *o = json_pack("{s:s, s:s, s:b}", "topic", name, "queue", *q, "exists", ok);
			if (ok) {
				json_object_set_new(o, "ready", json_integer(st.n[SPOOL_READY]));
				json_object_set_new(o, "delayed", json_integer(st.n[SPOOL_DELAYED]));
				json_object_set_new(o, "in_flight", json_integer(st.n[SPOOL_CLAIMED]));
				json_object_set_new(o, "dead", json_integer(st.n[SPOOL_DEAD]));
			}
			json_object_set_new(o, "copies", json_integer(copies));
			json_array_append_new(a, o);
		} else if (ok) {
			printf("%s %s %ld %ld %ld %ld %ld\n", name, *q, st.n[SPOOL_READY],
			       st.n[SPOOL_DELAYED], st.n[SPOOL_CLAIMED], st.n[SPOOL_DEAD], copies);
		} else {
			printf("%s %s - - - - %ld\n", name, *q, copies);
		}
	}
	if (a) {
		if (json_dumpf(a, stdout, JSON_INDENT(2)) != 0)
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
		putchar('\n');
		json_decref(a);
	}
	if (fflush(stdout) != 0)
		cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
	spool_strv_free(subs);
	spool_close(sp);
	return n ? 0 : EX_NOTHING;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'J'}, {"topic", required_argument, NULL, 'T'},
		CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	struct spool_err e = {0};
	struct ctx c = {0};
	const char *dir = NULL, *topic_name = NULL;
	unsigned states = 0;
	int json = 0, ch;

	cli_init(argv[0], usage);
	while ((ch = getopt_long(argc, argv, "d:hs:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd': dir = optarg; break;
		case 'h': cli_usage(1);
		case 'J': json = 1; break;
		case 's': {
			int k;
			for (k = SPOOL_READY; k <= SPOOL_WAITING; k++)
				if (strcmp(optarg, spool_state_name(k)) == 0)
					break;
			if (k > SPOOL_WAITING)
				cli_die(EX_USAGE, "-s: unknown state '%s' (ready, delayed, claimed, dead, done, "
				        "waiting)", optarg);
			states |= 1u << k;
			break;
		}
		case 'T': topic_name = optarg; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (topic_name) {
		if (argc || states)
			cli_usage(0);
		return topic(dir, topic_name, json);
	}
	if (argc < 1 || argc > 2)
		cli_usage(0);
	spool *sp;
	spool_queue *q = cli_queue(&sp, dir, argv[0], SPOOL_LOOK); /* it only looks */
	if (argc == 2) {
		c.id = argv[1];
		c.q = q;
		c.json = json ? json_array() : NULL; /* only a flag here */
		int r = q ? spool_list(q, states, json ? SPOOL_LIST_PEEK : 0, show, &c, &e) : 0;
		if (r < 0 && c.json && *c.found)
			cli_fail(&c.e); /* found, but could not be read */
		if (r < 0 || !*c.found)
			cli_die(EX_NOTFOUND, "%s: no such message in queue %s", c.id, argv[0]);
		if (c.one) {
			if (json_dumpf(c.one, stdout, JSON_INDENT(2)) != 0)
				cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
			putchar('\n');
			json_decref(c.one);
			json_decref(c.json);
		} else {
			cat(c.found);
		}
		spool_queue_close(q);
		spool_close(sp);
		return fflush(stdout) == 0 ? 0 : EX_IOERR;
	}
	c.now = spool_now();
	c.q = q;
	if (json)
		c.json = json_array();
	else if (isatty(1)) /* for people; a pipe gets only the rows */
		printf("%-7s %-26s %5s %6s %3s %8s %s\n", "STATE", "ID", "AGE", "DUE", "ATT", "SIZE",
		       "FIRST LINE, OR WHY IT FAILED");
	if (q && spool_list(q, states, SPOOL_LIST_PEEK, show, &c, &e) < 0)
		cli_fail(&e);
	if (json) {
		if (json_dumpf(c.json, stdout, JSON_INDENT(2)) != 0)
			cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
		putchar('\n');
		json_decref(c.json);
	}
	if (fflush(stdout) != 0)
		cli_die(EX_IOERR, "write to stdout: %s", strerror(errno));
	spool_queue_close(q);
	spool_close(sp);
	return c.n ? 0 : EX_NOTHING;
}
