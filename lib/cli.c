/* SPDX-License-Identifier: MIT */
/* cli.c: the commands' shared diagnostics and operand handling (see cli.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *prog = "mq";
static const char *usage_text;

static void
warn_hook(const char *msg)
{
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
	fprintf(help ? stdout : stderr, "%s", usage_text);
	cli_exit(help ? 0 : EX_USAGE);
}

void
cli_version(void)
{
	printf("%s (spoolmq) %s\n", prog, SPOOL_VERSION);
	cli_exit(0);
}

int64_t
cli_duration(const char *opt, const char *arg)
{
	int64_t d = spool_parse_duration(arg);
	if (d < 0)
		cli_die(EX_USAGE, "%s: bad duration '%s' (want e.g. 30s, 5m, 2h, 7d)", opt, arg);
	return d;
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
