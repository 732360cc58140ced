/* SPDX-License-Identifier: MIT */
/*
 * mq-send: stdin (or each FILE) becomes one message; with -l every line does.
 * Exits 0 only once the messages are on disk and visible in new/.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: mq-send [-il] [-d dir] [-H 'Name: value'] [--id key [--strict]]\n"
	"               [--key key] [--delay dur | --at time] [--ttl dur] [--no-sync]\n"
	"               queue [file ...]\n"
	"       mq-send [options] --topic topic [file ...]\n"
	"\n"
	"  -d dir          the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -H 'N: v'       add a header; may repeat\n"
	"  -i              print the id of each message sent\n"
	"  -l              one message per line of input (a log pipe), in group commits\n"
	"  --id key        a dedup key: the same key within dedup-window is sent once\n"
	"  --strict        with --id: a key sent before is an error (exit 3), not a no-op\n"
	"  --key key       an ordering key: one message of a key at a time, in send order\n"
	"  --delay dur     due after dur (one word: 30s, 5m, 2h, 7d)\n"
	"  --at time       due at time (@EPOCH, 2026-11-21T22:00:00Z)\n"
	"  --ttl dur       expire (to dead/) if not handled within dur\n"
	"  --no-sync       do not fsync: faster, lost if the machine crashes\n"
	"  --topic topic   publish: a copy to every queue subscribed to topic\n"
	"  file ...        the messages (default: stdin; - is stdin)\n";

#define LINE_BATCH 1000     /* lines per group commit at most */
#define LINE_LINGER 1000    /* ms a line may wait for its commit at most */

static int print_ids;
static spool_batch *batch; /* freed on every failure: no file is left in tmp/ */
static size_t line_batch = LINE_BATCH; /* at most the queue's max-length: else it never fits */
static spool_topic *topic; /* --topic: the batch publishes to its subscribers */

static noreturn void
fail(const struct spool_err *e)
{
	spool_batch_free(batch);
	spool_topic_close(topic);
	cli_fail(e);
}

/*
 * Line mode on a full disk.  A write, sync or rename that fails for want of
 * space leaves the batch's files in an unknown state (a failed fsync may
 * not be tried again), so they are dropped; the lines themselves are held
 * here from their read until their commit, and written again, as new files,
 * once the disk has room.  The pipe waits meanwhile, as for max-length.
 */
static struct {
	char *p;
	size_t len, cap;
	size_t lines;
} held;

static void
hold(const char *p, size_t n, int ends_line)
{
	if (held.len + n > held.cap) {
		size_t cap = held.cap ? held.cap : 65536;
		while (cap < held.len + n)
			cap *= 2;
		char *q = realloc(held.p, cap);
		if (!q) {
			spool_batch_free(batch);
			cli_die(EX_OSERR, "out of memory holding a batch of lines");
		}
		held.p = q, held.cap = cap;
	}
	memcpy(held.p + held.len, p, n);
	held.len += n;
	held.lines += ends_line != 0;
}

/* The held lines into the (empty) batch again; the last one stays open
 * when it has no newline yet, as lines() left it. */
static int
rewrite(spool_batch *b, struct spool_err *e)
{
	for (size_t off = 0; off < held.len;) {
		char *nl = memchr(held.p + off, '\n', held.len - off);
		size_t end = nl ? (size_t)(nl - held.p) + 1 : held.len;
		if (spool_batch_begin(b, e) != 0 || spool_batch_write(b, held.p + off, end - off, e) != 0 ||
		    (nl && spool_batch_end(b, e) != 0))
			return -1;
		off = end;
	}
	return 0;
}

/* A step of line mode failed with e: wait out a full disk and write the
 * held lines again, or fail as before (another error, a publish, or a
 * commit some of whose messages a consumer already took). */
static void
ride_out(spool_batch *b, struct spool_err *e)
{
	static int said;
	for (int tries = 0;; tries++) {
		if (e->code != EX_TEMPFAIL || topic || spool_batch_gone(b) > 0)
			fail(e);
		struct spool_err why = *e;
		spool_batch_drop(b);
		if (!said++)
			cli_warn("%s: waiting for room on the disk (%zu lines held)", why.msg, held.lines);
		int full = spool_batch_wait_disk(b, held.len, held.lines + 1, e);
		if (full < 0 || (full == 0 && tries > 0)) /* room, and it fails again: not the disk */
			fail(full < 0 ? e : &why);
		*e = (struct spool_err){0};
		if (rewrite(b, e) == 0)
			return;
	}
}

/* --topic: the batch goes to every subscriber of name. */
static spool_batch *
publish(spool **sp, const char *dir, const char *name, const struct spool_send_opts *o)
{
	struct spool_err e = {0};
	if (!(*sp = spool_open(dir, 0, &e))) {
		if (e.code == EX_NOTFOUND)
			cli_die(EX_NOUSER, "topic %s has no subscribers: not sent", name);
		cli_fail(&e);
	}
	if (!(topic = spool_topic_open(*sp, name, &e)))
		cli_fail(&e);
	spool_batch *b = spool_topic_batch(topic, o, &e);
	if (!b)
		fail(&e);
	return b;
}

/* Returns the exit code: 0, or EX_DUPLICATE for a --strict duplicate.  With
 * wait (-l), a queue that is full, or a disk under its reserve, is waited
 * out (a pipe is not to be broken); a one-shot send exits 75 for its caller
 * to retry. */
static int
commit(spool_batch *b, const char *key, int strict, int wait)
{
	static int said;
	struct spool_err e = {0};
	const char *dup = NULL;
	long n;
	/* refused by the limits, the batch is kept (pending): anything else
	 * dropped it, and line mode writes its held lines again (a full disk) */
	while ((n = spool_batch_commit(b, &dup, &e)) < 0 && wait) {
		if (e.code == EX_TEMPFAIL && spool_batch_pending(b) > 0) {
			if (!said++)
				cli_warn("%s: waiting for room", e.msg);
			if (spool_batch_wait_room(b, &e) != 0)
				fail(&e);
		} else {
			ride_out(b, &e);
		}
	}
	if (n < 0)
		fail(&e);
	held.len = held.lines = 0; /* committed: nothing to write again */
	if (dup) {
		/* the caller takes the printed id for the message: it must get it */
		if (print_ids && (printf("%s\n", dup) < 0 || fflush(stdout) != 0))
			cli_die(EX_IOERR, "write ids: %s", strerror(errno));
		cli_warn("duplicate of %s (key '%s' seen within the dedup window): not sent", dup, key);
		return strict ? EX_DUPLICATE : 0;
	}
	for (long i = 0; print_ids && i < n; i++)
		printf("%s\n", spool_batch_id(b, (size_t)i));
	if (print_ids && fflush(stdout) != 0)
		cli_die(EX_IOERR, "write ids: %s", strerror(errno));
	return 0;
}

static int
open_input(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		cli_die(errno == EACCES ? EX_NOPERM : EX_NOINPUT, "open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
		cli_die(EX_NOINPUT, "%s: is a directory", path);
	return fd;
}

/* One message from fd. */
static void
whole(spool_batch *b, int fd, const char *what)
{
	struct spool_err e = {0};
	if (spool_batch_begin(b, &e) != 0 || spool_batch_write_fd(b, fd, &e) != 0 ||
	    spool_batch_end(b, &e) != 0) {
		if (e.code == EX_NOINPUT) { /* the input, not the spool */
			spool_batch_free(batch);
			cli_die(EX_NOINPUT, "%s: %s", what, e.msg);
		}
		fail(&e);
	}
}

static int64_t
since(int64_t t)
{
	return spool_now() - t;
}

/*
 * Every line one message.  A batch is committed when no more input is
 * waiting, so a quiet log's line goes out at once and a busy one is batched
 * by itself (the time one commit takes is the time the next batch gathers);
 * LINE_BATCH and LINE_LINGER bound a batch when input never pauses.  (No
 * --id here: a key names one message.)
 */
static void
lines(spool_batch *b, int fd)
{
	static char buf[1 << 18];
	struct spool_err e = {0};
	int open_msg = 0;
	int64_t first = 0; /* when the oldest uncommitted line arrived */

	for (;;) {
		ssize_t r = read(fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
		{
			int err = errno;
			spool_batch_free(batch);
			cli_die(EX_IOERR, "read: %s", strerror(err));
		}
		}
		if (r == 0)
			break;
		for (char *p = buf, *end = buf + r; p < end;) {
			char *nl = memchr(p, '\n', (size_t)(end - p));
			char *stop = nl ? nl + 1 : end;
			/* on a full disk, ride_out writes every held line again,
			 * this one included: ended if it has its newline, else open */
			hold(p, (size_t)(stop - p), nl != NULL);
			int redone = 0;
			if ((!open_msg && spool_batch_begin(b, &e) != 0) ||
			    spool_batch_write(b, p, (size_t)(stop - p), &e) != 0) {
				ride_out(b, &e);
				redone = 1;
			}
			open_msg = 1;
			p = stop;
			if (!nl)
				break;
			if (!redone && spool_batch_end(b, &e) != 0)
				ride_out(b, &e);
			open_msg = 0;
			if (!first)
				first = spool_now();
			if (spool_batch_pending(b) >= line_batch) {
				commit(b, NULL, 0, 1);
				first = 0;
			}
		}
		struct pollfd pfd = {fd, POLLIN, 0};
		if (first && (poll(&pfd, 1, 0) == 0 || since(first) >= LINE_LINGER)) {
			commit(b, NULL, 0, 1);
			first = 0;
		}
	}
	while (open_msg && spool_batch_end(b, &e) != 0) /* a last line without newline */
		ride_out(b, &e);                            /* which leaves it open again */
	commit(b, NULL, 0, 1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"at", required_argument, NULL, 'A'},
		{"delay", required_argument, NULL, 'D'},
		{"id", required_argument, NULL, 'K'},
		{"key", required_argument, NULL, 'O'},
		{"no-sync", no_argument, NULL, 'N'},
		{"strict", no_argument, NULL, 'S'},
		{"topic", required_argument, NULL, 'P'},
		{"ttl", required_argument, NULL, 'T'},
		CLI_LONG_HELP,
		{NULL, 0, NULL, 0},
	};
	struct spool_send_opts o = {0};
	struct spool_err e = {0};
	const char *dir = NULL, **hdrs = calloc((size_t)argc + 1, sizeof *hdrs);
	const char *topic_name = NULL;
	int c, nh = 0, line_mode = 0, strict = 0;
	int64_t delay = -1, at = -1;

	cli_init(argv[0], usage);
	if (!hdrs)
		cli_die(EX_OSERR, "out of memory");
	while ((c = getopt_long(argc, argv, "d:hH:il", longopts, NULL)) != -1) {
		switch (c) {
		case 'A':
			if ((at = spool_parse_time(optarg)) < 0)
				cli_die(EX_USAGE, "--at: bad time '%s' (want @EPOCH or 2026-11-21T22:00:00Z)",
				        optarg);
			break;
		case 'd': dir = optarg; break;
		case 'D': delay = cli_duration("--delay", optarg); break;
		case 'h': cli_usage(1);
		case 'H': hdrs[nh++] = optarg; break;
		case 'i': print_ids = 1; break;
		case 'K': o.key = optarg; break;
		case 'l': line_mode = 1; break;
		case 'N': o.nosync = 1; break;
		case 'O': o.order_key = optarg; break;
		case 'P': topic_name = optarg; break;
		case 'S': strict = 1; break;
		case 'T':
			if ((o.ttl = cli_duration("--ttl", optarg)) == 0)
				cli_die(EX_USAGE, "--ttl: must be more than 0");
			break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (topic_name) /* no queue operand: the FILEs start at argv[0] */
		argv--, argc++;
	if (argc < 1)
		cli_usage(0);
	if (delay >= 0 && at >= 0)
		cli_die(EX_USAGE, "--delay and --at: give one");
	if (o.key && (line_mode || argc > 2))
		cli_die(EX_USAGE, "--id: one key names one message (not with -l or several files)");
	if (o.key && spool_key_check(o.key, &e) != 0)
		cli_fail(&e);
	if (o.order_key && spool_order_key_check(o.order_key, &e) != 0)
		cli_fail(&e);
	if (strict && !o.key)
		cli_die(EX_USAGE, "--strict goes with --id");
	o.headers = hdrs;
	if (spool_headers_check(hdrs, &e) != 0)
		cli_fail(&e);
	o.due = at >= 0 ? at : delay > 0 ? spool_now() + delay : 0;

	if (!topic_name)
		cli_split_check(dir, argv[0]);
	/* inputs first: an unreadable FILE must stop us before anything is written */
	int *fds = calloc((size_t)argc, sizeof *fds);
	if (!fds)
		cli_die(EX_OSERR, "out of memory");
	for (int i = 1; i < argc; i++)
		fds[i] = strcmp(argv[i], "-") == 0 ? 0 : open_input(argv[i]);

	spool *sp;
	spool_queue *q = NULL;
	if (topic_name && !spool_topic_name_ok(topic_name))
		cli_die(EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		        "not starting with . or -", spool_printable(topic_name));
	if (!topic_name && !(q = cli_queue(&sp, dir, argv[0], SPOOL_CREATE)))
		cli_die(EX_CANTCREAT, "cannot open queue %s", argv[0]);
	spool_batch *b = batch = topic_name ? publish(&sp, dir, topic_name, &o) :
	                                      spool_batch_new(q, &o, &e);
	if (!b)
		cli_fail(&e);
	signal(SIGPIPE, SIG_IGN);
	int rc = 0;

	if (line_mode) {
		/* a publish passes over a full subscriber (named, exit 5): no cap */
		int64_t max = q ? spool_queue_config(q)->max_length : 0;
		if (max > 0 && max < LINE_BATCH)
			line_batch = (size_t)max;
		if (argc == 1)
			lines(b, 0);
		for (int i = 1; i < argc; i++)
			lines(b, fds[i]);
	} else {
		if (argc == 1)
			whole(b, 0, "stdin");
		for (int i = 1; i < argc; i++)
			whole(b, fds[i], argv[i]);
		rc = commit(b, o.key, strict, 0);
	}
	spool_batch_free(b);
	if (topic && spool_topic_missed(topic) && rc == 0)
		rc = EX_PARTIAL; /* each one named on stderr */
	spool_topic_close(topic);
	spool_queue_close(q);
	spool_close(sp);
	free(fds);
	free(hdrs);
	return rc;
}
