/* SPDX-License-Identifier: MIT */
/*
 * cli.h: what every command in bin/ shares: diagnostics prefixed with the
 * program name, usage and version, option values, and operands given as
 * arguments or one per line on stdin ("-").  Only commands include this; the
 * spool library itself never prints.
 */
#ifndef SPOOL_CLI_H
#define SPOOL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdnoreturn.h>

#include "spool.h"

extern const char *prog;

void cli_init(char *argv0, const char *usage);
/* flush stdio and leave now (no atexit handlers, no leak check) */
noreturn void cli_exit(int code);
noreturn void cli_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
noreturn void cli_fail(const struct spool_err *e);
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error(const struct spool_err *e); /* print, do not exit */
/* usage to stderr and exit 64 (or to stdout and exit 0 for --help) */
noreturn void cli_usage(int help);
noreturn void cli_version(void);
int64_t cli_duration(const char *opt, const char *arg);
/* A queue operand that does not exist and names the unit of a bare-number
 * duration just before it ("--delay 5 minutes"): die with a usage error that
 * says how to write it ("--delay 5m").  cli_queue checks it itself; for a
 * command that reads its inputs before opening the queue (mq-send). */
void cli_split_check(const char *dir, const char *name);
long cli_count(const char *opt, const char *arg);
/* Open the spool and queue or die with the right code: a spool that does not
 * exist is EX_NOINPUT unless SPOOL_CREATE; a missing queue returns NULL.
 * CLI_OR_CREATE: open as a reader, and create only what is missing
 * (mq-recv -w, -f: what is in the way stays EX_NOINPUT). */
#define CLI_OR_CREATE 0x100
spool_queue *cli_queue(spool **sp, const char *dir, const char *name, int flags);
/* fn for each operand; "-" reads operands from stdin, one per line (the
 * first field of a line that looks like an id or a path).  Returns the worst
 * exit code fn returned. */
typedef int cli_each_fn(const char *arg, void *ctx);
int cli_each(char **argv, int argc, cli_each_fn *fn, void *ctx);
/* A copy of s at the end of the vector *v of *n strings, or die (71). */
void cli_strv_add(char ***v, size_t *n, const char *s);

/* A progress line on stderr for long work (mq-recv -n 0, mq-replay --all,
 * mq-rm --all), only when stderr is a terminal and stdout is not (it
 * would garble what is printed there): after half a second, then
 * four times a second, "mq-rm: 12000 of 90000 messages, 25.1k/s, 3s left"
 * in place; at the end a last line with the count, time and rate.  total
 * <= 0: not known. */
struct cli_progress {
	const char *what; /* "messages" */
	long total, done;
	int64_t start, last;
	bool on, shown;
};
void cli_progress_start(struct cli_progress *p, const char *what, long total);
void cli_progress_tick(struct cli_progress *p, long n);
void cli_progress_end(struct cli_progress *p);
/* The messages of q in states (a mask as spool_list's), for a total: a
 * listing of names, so only when a progress line can be shown; else 0. */
long cli_progress_total(spool_queue *q, unsigned states);

/* long options every command takes */
#define CLI_LONG_HELP {"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}

#endif
