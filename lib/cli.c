/* SPDX-License-Identifier: MIT */
/* cli.c: the commands' shared diagnostics and operand handling (see cli.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"

const char *prog = "mq";
static const char *usage_text;
static struct cli_progress *progress; /* its line is on the terminal: a message first clears it */

static void
clear_progress(void)
{
	if (progress && progress->shown)
		fputs("\r\033[K", stderr); /* the next update writes it again */
}

static void
warn_hook(const char *msg)
{
	clear_progress();
	fprintf(stderr, "%s: warning: %s\n", prog, msg);
}

void
cli_init(char *argv0, const char *usage)
{
	const char *slash = strrchr(argv0, '/');
	prog = slash ? slash + 1 : argv0;
	usage_text = usage;
	spool_warn_hook = warn_hook;
}

/*
 * The exits that abandon work midway (errors, usage, --version) leave the
 * memory to the kernel: freeing it from deep in a call chain would mean
 * threading every allocation through to here.  They flush stdio and _exit, so
 * LeakSanitizer's check at exit runs on the normal ends only (a return from
 * main), where a leak means a missing free.  On an abandoned run its scan is
 * no judge anyway: a pointer held only by a frame below a noreturn call was
 * found or not depending on the address layout, a test failing one run in two.
 */
void
cli_exit(int code)
{
	if (fflush(NULL) != 0 && code == 0)
		code = EX_IOERR;
	_exit(code);
}

static void
vwarn(const char *fmt, va_list ap)
{
	clear_progress();
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
cli_die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
	cli_exit(code);
}

void
cli_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vwarn(fmt, ap);
	va_end(ap);
}

void
cli_error(const struct spool_err *e)
{
	clear_progress();
	fprintf(stderr, "%s: %s\n", prog, e->msg);
}

void
cli_fail(const struct spool_err *e)
{
	cli_error(e);
	cli_exit(e->code ? e->code : EX_SOFTWARE);
}

void
cli_usage(int help)
{
	if (help) {
		fputs(usage_text, stdout);
		cli_exit(0);
	}
	/* a usage error: the synopsis (up to the blank line), not the options */
	const char *blank = strstr(usage_text, "\n\n");
	int len = blank ? (int)(blank - usage_text) + 1 : (int)strlen(usage_text);
	fprintf(stderr, "%.*s(%s --help: the options)\n", len, usage_text, prog);
	cli_exit(EX_USAGE);
}

void
cli_version(void)
{
	printf("%s (spoolmq) %s\n", prog, SPOOL_VERSION);
	cli_exit(0);
}

/* The last duration option given as a bare number ("--delay 5"), for the
 * hint when its unit was taken for the queue ("--delay 5 minutes"). */
static const char *bare_opt, *bare_arg;

static void split_check(spool *sp, const char *name);

int64_t
cli_duration(const char *opt, const char *arg)
{
	int64_t d = spool_parse_duration(arg);
	if (d < 0)
		cli_die(EX_USAGE, "%s: bad duration '%s' (want e.g. 30s, 5m, 2h, 7d)", opt, arg);
	if (*arg && strspn(arg, "0123456789") == strlen(arg))
		bare_opt = opt, bare_arg = arg;
	return d;
}

/* The one-letter unit of a word that names one ("minutes": 'm'), or 0. */
static const char *
unit_of(const char *w)
{
	static const char *const units[][2] = {
		{"ms", "ms"}, {"msec", "ms"}, {"millisecond", "ms"}, {"milliseconds", "ms"},
		{"s", "s"}, {"sec", "s"}, {"secs", "s"}, {"second", "s"}, {"seconds", "s"},
		{"m", "m"}, {"min", "m"}, {"mins", "m"}, {"minute", "m"}, {"minutes", "m"},
		{"h", "h"}, {"hr", "h"}, {"hrs", "h"}, {"hour", "h"}, {"hours", "h"},
		{"d", "d"}, {"day", "d"}, {"days", "d"}};
	for (size_t i = 0; i < sizeof units / sizeof *units; i++)
		if (strcasecmp(w, units[i][0]) == 0)
			return units[i][1];
	return NULL;
}

/* A queue that does not exist, named like the unit of a bare-number
 * duration just before it: the duration was split in two words. */
static void
split_duration(const char *name)
{
	const char *u = bare_opt ? unit_of(name) : NULL;
	if (u)
		cli_die(EX_USAGE, "queue %s: no such queue: %s %s %s is read as %s %s and queue %s; "
		        "a duration is one word: %s %s%s", name, bare_opt, bare_arg, name, bare_opt,
		        bare_arg, name, bare_opt, bare_arg, u);
}

static void
split_check(spool *sp, const char *name)
{
	struct spool_err e = {0};
	if (!bare_opt || !unit_of(name))
		return;
	spool_queue *q = spool_queue_open(sp, name, SPOOL_LOOK, &e);
	if (!q && e.code == EX_NOTFOUND)
		split_duration(name);
	spool_queue_close(q);
}

void
cli_split_check(const char *dir, const char *name)
{
	struct spool_err e = {0};
	if (!bare_opt || !unit_of(name) || !spool_queue_name_ok(name))
		return;
	spool *sp = spool_open(dir, 0, &e);
	if (sp)
		split_check(sp, name);
	spool_close(sp);
}

long
cli_count(const char *opt, const char *arg)
{
	char *end;
	errno = 0;
	long n = strtol(arg, &end, 10);
	if (errno || end == arg || *end || n < 0)
		cli_die(EX_USAGE, "%s: bad number '%s'", opt, arg);
	return n;
}

spool_queue *
cli_queue(spool **sp, const char *dir, const char *name, int flags)
{
	struct spool_err e = {0};
	if (!spool_queue_name_ok(name))
		cli_die(EX_USAGE, "bad queue name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(name));
	int lib = flags & ~CLI_OR_CREATE;
	if (!(*sp = spool_open(dir, lib, &e)) && e.code == EX_NOTFOUND && (flags & CLI_OR_CREATE))
		*sp = spool_open(dir, lib | SPOOL_CREATE, &e);
	if (!*sp) {
		if (e.code == EX_NOTFOUND) /* a typo in a cron line, to be told of */
			e.code = EX_NOINPUT;
		cli_fail(&e);
	}
	split_check(*sp, name); /* before anything is made for it */
	spool_queue *q = spool_queue_open(*sp, name, lib, &e);
	if (!q && e.code == EX_NOTFOUND && (flags & CLI_OR_CREATE))
		q = spool_queue_open(*sp, name, lib | SPOOL_CREATE, &e);
	if (!q && e.code != EX_NOTFOUND)
		cli_fail(&e);
	return q;
}

void
cli_strv_add(char ***v, size_t *n, const char *s)
{
	char **w = realloc(*v, (*n + 1) * sizeof *w); /* NOLINT(bugprone-sizeof-expression): of pointers */
	if (!w || !(w[*n] = strdup(s)))
		cli_die(EX_OSERR, "out of memory");
	*v = w;
	(*n)++;
}

/* The first field of a line that is an id or a path (so mq-peek's output pipes in). */
static char *
operand(char *line)
{
	char *save, *tok, *first = NULL;
	for (tok = strtok_r(line, " \t\n", &save); tok; tok = strtok_r(NULL, " \t\n", &save)) {
		if (!first)
			first = tok;
		if (strchr(tok, '/') || strlen(tok) == 26)
			return tok;
	}
	return first;
}

int
cli_each(char **argv, int argc, cli_each_fn *fn, void *ctx)
{
	int worst = 0;
	for (int i = 0; i < argc; i++) {
		int rc;
		if (strcmp(argv[i], "-") != 0) {
			rc = fn(argv[i], ctx);
			if (rc > worst)
				worst = rc;
			continue;
		}
		char *line = NULL;
		size_t cap = 0;
		while (getline(&line, &cap, stdin) > 0) {
			char *op = operand(line);
			if (op && (rc = fn(op, ctx)) > worst)
				worst = rc;
		}
		free(line);
	}
	return worst;
}

/* ---- progress of long work, on a terminal ---- */

#define PROGRESS_AFTER 500 /* ms: quick work says nothing */
#define PROGRESS_EVERY 250 /* ms between two updates */

void
cli_progress_start(struct cli_progress *p, const char *what, long total)
{
	*p = (struct cli_progress){.what = what, .total = total, .start = spool_now()};
	/* stdout on the terminal too (the messages, the ids) would be garbled */
	const char *term = getenv("TERM");
	p->on = isatty(2) && !isatty(1) && !(term && strcmp(term, "dumb") == 0);
	p->last = p->start + PROGRESS_AFTER - PROGRESS_EVERY;
	if (p->on)
		progress = p;
}

static void
rate_str(double r, char *buf, size_t len)
{
	snprintf(buf, len, r >= 10000 ? "%.1fk" : "%.0f", r >= 10000 ? r / 1000 : r);
}

void
cli_progress_tick(struct cli_progress *p, long n)
{
	p->done += n;
	if (!p->on)
		return;
	int64_t now = spool_now();
	if (now - p->last < PROGRESS_EVERY)
		return;
	p->last = now;
	p->shown = true;
	double secs = (double)(now - p->start) / 1000, r = secs > 0 ? (double)p->done / secs : 0;
	char rs[32];
	rate_str(r, rs, sizeof rs);
	/* \r and clear to the end of the line: each update replaces the last */
	if (p->total > 0 && p->done <= p->total && r > 0)
		fprintf(stderr, "\r%s: %ld of %ld %s, %s/s, %.0fs left\033[K", prog, p->done, p->total,
		        p->what, rs, (double)(p->total - p->done) / r);
	else
		fprintf(stderr, "\r%s: %ld %s, %s/s\033[K", prog, p->done, p->what, rs);
}

void
cli_progress_end(struct cli_progress *p)
{
	if (!p->shown)
		return;
	double secs = (double)(spool_now() - p->start) / 1000;
	char rs[32];
	rate_str(secs > 0 ? (double)p->done / secs : 0, rs, sizeof rs);
	fprintf(stderr, "\r%s: %ld %s in %.1fs, %s/s\033[K\n", prog, p->done, p->what, secs, rs);
	p->shown = false;
	if (progress == p)
		progress = NULL;
}

static int
count_one(const struct spool_entry *en, void *arg)
{
	(void)en;
	++*(long *)arg;
	return 0;
}

long
cli_progress_total(spool_queue *q, unsigned states)
{
	struct spool_err e = {0};
	long n = 0;
	if (!isatty(2) || isatty(1) || spool_list(q, states, 0, count_one, &n, &e) < 0)
		return 0;
	return n;
}
