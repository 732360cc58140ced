/* SPDX-License-Identifier: MIT */
/*
 * mq-relayd: the one long-running process of spoolmq.  It runs consumers the
 * moment a message arrives (consume: a command, as mq-recv -x; forward: an
 * HTTP PUT to another relay), receives messages over HTTP (listen) and
 * serves the operators' page (dashboard, web.c).
 *
 * main.c: options, logging, start-up, SIGHUP reload and SIGTERM drain, and
 * the loop (loop.c) that holds everything: inotify, the signalfd, handler
 * pidfds, libcurl's sockets, libmicrohttpd's epoll fd, and one deadline
 * registry.  After start-up the daemon does not die on recoverable errors:
 * it logs them and backs off.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "relayd.h"

static const char usage[] =
	"usage: mq-relayd [-nsv] [-c file] [-d dir] [-p file]\n"
	"\n"
	"  -c file   the config (default /etc/mq/relayd.conf)\n"
	"  -d dir    the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -n        check the config and exit\n"
	"  -p file   write the pid to file once started (for kill -HUP)\n"
	"  -s        log to syslog instead of stderr\n"
	"  -v        verbose: also log each handler, forward and rescan\n";

#define DEFAULT_CONF "/etc/mq/relayd.conf"

int log_verbose, log_syslog;

/* ---- logging: one line per notable event ---- */

void
logmsg(int prio, const char *fmt, ...)
{
	va_list ap;
	if (prio == LOG_DEBUG && !log_verbose)
		return;
	va_start(ap, fmt);
	if (log_syslog) {
		vsyslog(prio, fmt, ap);
	} else {
		fprintf(stderr, "%s: ", prog);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
	}
	va_end(ap);
}

/* The library's warnings (a queue's config, a file set aside from a queue)
 * go where the daemon logs. */
static void
warn_hook(const char *msg)
{
	logmsg(LOG_WARNING, "%s", msg);
}

/* *t becomes x when x is a time (not 0) before *t or *t is unset (0). */
void
earlier(int64_t *t, int64_t x)
{
	if (x && (!*t || x < *t))
		*t = x;
}

/* ---- configuration and reload ---- */

static int
load(struct relayd *r, struct conf *c, struct spool_err *e)
{
	if (conf_read(r->conf_path, c, e) != 0)
		return -1;
	if (r->dir) { /* -d wins over the file */
		free(c->spool);
		if (!(c->spool = strdup(r->dir))) {
			conf_free(c);
			return spool_fail(e, EX_OSERR, "out of memory");
		}
	}
	return 0;
}

/* The Hop name: `name` from the file, else HOST:SPOOL (unique per spool). */
static int
set_name(struct relayd *r, struct spool_err *e)
{
	char host[256] = "localhost";
	free(r->name);
	if (r->conf.name) {
		r->name = strdup(r->conf.name);
	} else {
		gethostname(host, sizeof host - 1);
		if (asprintf(&r->name, "%s:%s", host, spool_root(r->sp)) < 0)
			r->name = NULL;
	}
	for (char *p = r->name; p && *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == ',')
			*p = '_';
	if (r->name && strlen(r->name) > 200) /* a Hop name's limit (conf.c): keep the spool's end */
		memmove(r->name, r->name + strlen(r->name) - 200, 201);
	return r->name ? 0 : spool_fail(e, EX_OSERR, "out of memory");
}

static int
consumers_init(struct relayd *r, struct conf *c, struct spool_err *e)
{
	for (struct consumer *k = c->consumers; k; k = k->next)
		if (k->kind == CONSUME_FORWARD && !k->fwd && forward_init(r, k, e) != 0)
			return -1;
	return 0;
}

static void
reload(struct relayd *r)
{
	struct spool_err e = {0};
	struct conf nc;
	if (load(r, &nc, &e) != 0 || consumers_init(r, &nc, &e) != 0 ||
	    receive_reload(r, &nc, &e) != 0 || web_reload(r, &nc, &e) != 0) {
		if (nc.consumers || nc.listeners || nc.dashboard) {
			for (struct consumer *k = nc.consumers; k; k = k->next)
				forward_free(r, k);
			conf_free(&nc);
		}
		logmsg(LOG_ERR, "reload: %s: keeping the running configuration", e.msg);
		return;
	}
	if (!(nc.spool && r->conf.spool ? strcmp(nc.spool, r->conf.spool) == 0 :
	                                  !nc.spool && !r->conf.spool))
		logmsg(LOG_WARNING, "reload: the spool cannot change without a restart: ignored");
	free(nc.spool);
	nc.spool = r->conf.spool;
	r->conf.spool = NULL;
	/* a consumer of the same queue and command (or peer) keeps its queue
	 * and the deliveries it has running */
	for (struct consumer *n = nc.consumers; n; n = n->next)
		for (struct consumer *o = r->conf.consumers; o; o = o->next)
			if (!o->retired && consumer_same(o, n)) {
				n->q = o->q;
				n->gone = o->gone;
				o->q = NULL;
				o->retired = true;
				for (struct work *w = r->work; w; w = w->next)
					if (w->c == o)
						w->c = n, n->running++, o->running--;
				if (n->kind == CONSUME_FORWARD)
					forward_adopt(r, o, n);
				if (n->q && spool_queue_reload(n->q, &e) != 0)
					logmsg(LOG_ERR, "reload: %s", e.msg);
				if (n->q)
					queues_apply_overrides(n);
				break;
			}
	/* the rest: what they have running finishes and reports to a retired consumer */
	struct consumer *keep = NULL;
	for (struct consumer *o = r->conf.consumers, *next; o; o = next) {
		next = o->next;
		loop_timer_set(r->loop, &o->wake, 0);
		queues_drop(r, o->q);
		o->q = NULL;
		o->retired = true;
		if (o->running) { /* still referenced by deliveries: keep it (not in the config) */
			o->next = keep;
			keep = o;
		} else {
			forward_free(r, o);
			consumer_free(o);
		}
	}
	r->conf.consumers = NULL;
	/* listeners keep running as they are (receive_reload took their new tokens) */
	struct conf old = r->conf;
	r->conf = nc;
	conf_free(&old);
	struct consumer **tail = &r->conf.consumers;
	while (*tail)
		tail = &(*tail)->next;
	*tail = keep;
	long n = 0;
	for (struct consumer *c = r->conf.consumers; c; c = c->next)
		n += !c->retired;
	logmsg(LOG_INFO, "reloaded %s: %ld consumers", r->conf_path, n);
	queues_rescan(r, NULL);
}

/* ---- -p: the pid file ---- */

/* Written once start-up has succeeded, so that the file names a daemon that
 * serves (kill -HUP "$(cat FILE)" reaches this one, whatever else runs);
 * through a temporary file renamed over it, so that a reader never sees it
 * half written.  Removed at exit; a daemon killed with SIGKILL leaves it. */
static int
pidfile_write(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
		return errno = ENAMETOOLONG, -1;
	FILE *f = fopen(tmp, "wxe");
	if (!f)
		return -1;
	int ok = fprintf(f, "%ld\n", (long)getpid()) > 0;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		int err = errno;
		unlink(tmp);
		return errno = err, -1;
	}
	return 0;
}

/* ---- signals ---- */

static int sigfd = -1;

static void
on_signal(void *arg, uint32_t events)
{
	struct relayd *r = arg;
	struct signalfd_siginfo si;
	(void)events;
	while (read(sigfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			logmsg(LOG_INFO, "SIGHUP: reloading %s", r->conf_path);
			reload(r);
		} else if (!r->stopping) {
			r->stopping = true;
			r->stop_deadline = spool_now() + r->conf.stop_timeout;
			long n = 0;
			for (struct work *w = r->work; w; w = w->next)
				n++;
			logmsg(LOG_INFO,
			       "%s: stopping: no new claims, waiting up to %llds for %ld deliveries",
			       strsignal((int)si.ssi_signo), (long long)r->conf.stop_timeout / 1000, n);
			exec_stop_all(r);
			forward_stop_all(r);
		}
	}
}

static int
run(struct relayd *r)
{
	queues_rescan(r, NULL);
	for (;;) {
		queues_pass(r);
		receive_pass(r);
		if (r->stopping && !r->work)
			return 0;
		if (loop_once(r->loop, -1) != 0) {
			logmsg(LOG_ERR, "epoll_wait: %s", strerror(errno));
			sleep(1);
		}
		queues_forget_retired(r);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {CLI_LONG_HELP, {NULL, 0, NULL, 0}};
	static struct relayd relayd;
	struct relayd *r = &relayd;
	struct spool_err e = {0};
	const char *pidfile = NULL;
	int check = 0, c;

	cli_init(argv[0], usage);
	spool_warn_hook = warn_hook;
	r->conf_path = DEFAULT_CONF;
	while ((c = getopt_long(argc, argv, "c:d:hnp:sv", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': r->conf_path = optarg; break;
		case 'd': r->dir = optarg; break;
		case 'h': cli_usage(1);
		case 'n': check = 1; break;
		case 'p': pidfile = optarg; break;
		case 's': log_syslog = 1; break;
		case 'v': log_verbose = 1; break;
		case 'V': cli_version();
		default: cli_usage(0);
		}
	}
	if (optind != argc)
		cli_usage(0);
	if (load(r, &r->conf, &e) != 0)
		cli_fail(&e);
	long nc = 0, nf = 0, nl = 0;
	for (struct consumer *k = r->conf.consumers; k; k = k->next)
		k->kind == CONSUME_EXEC ? nc++ : nf++;
	for (struct listener *l = r->conf.listeners; l; l = l->next)
		nl++;
	char what[128];
	int len = snprintf(what, sizeof what, "%ld consumers", nc);
	if (nf || nl)
		len += snprintf(what + len, sizeof what - len, ", %ld forwards, %ld listeners", nf, nl);
	if (r->conf.dashboard)
		snprintf(what + len, sizeof what - len, ", a dashboard");
	if (check) {
		/* what start-up reads besides the file: token files, certificates */
		for (struct consumer *k = r->conf.consumers; k; k = k->next)
			if (k->kind == CONSUME_FORWARD && forward_check(k, &e) != 0)
				cli_fail(&e);
		if (receive_check(&r->conf, &e) != 0 || web_check(&r->conf, &e) != 0)
			cli_fail(&e);
		printf("%s: ok: %s\n", r->conf_path, what);
		return 0;
	}
	if (log_syslog)
		openlog(prog, LOG_PID, LOG_DAEMON);

	if (!(r->sp = spool_open(r->conf.spool, SPOOL_CREATE, &e)) || !(r->w = spool_watch_new(&e)) ||
	    set_name(r, &e) != 0)
		cli_fail(&e);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct loop_io *watch_io = NULL, *sig_io = NULL;
	if ((sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 || !(r->loop = loop_new()) ||
	    !(watch_io = loop_io_add(r->loop, spool_watch_fd(r->w), EPOLLIN, queues_on_watch, r)) ||
	    !(sig_io = loop_io_add(r->loop, sigfd, EPOLLIN, on_signal, r)))
		cli_die(EX_OSERR, "set up the event loop: %s", strerror(errno));
	queues_init(r);
	spool_job_raise_nofile(); /* first: the closer's ring is a share of it */
	spool_closer_start();
	if (consumers_init(r, &r->conf, &e) != 0 || receive_start(r, &e) != 0 || web_start(r, &e) != 0)
		cli_fail(&e);
	for (struct consumer *k = r->conf.consumers; k; k = k->next)
		queues_open(r, k);
	if (pidfile && pidfile_write(pidfile) != 0)
		cli_die(EX_CANTCREAT, "write pid file %s: %s", pidfile, strerror(errno));
	logmsg(LOG_INFO, "started: %s, spool %s", what, spool_root(r->sp));
	int rc = run(r);
	logmsg(LOG_INFO, "stopped");
	web_stop(r);
	if (pidfile && unlink(pidfile) != 0)
		logmsg(LOG_WARNING, "remove pid file %s: %s", pidfile, strerror(errno));
	receive_stop(r);
	for (struct consumer *k = r->conf.consumers; k; k = k->next) {
		loop_timer_set(r->loop, &k->wake, 0);
		queues_drop(r, k->q), k->q = NULL;
		forward_free(r, k);
	}
	forward_shutdown(r);
	spool_closer_stop();
	queues_gc(r);
	loop_io_del(r->loop, watch_io);
	loop_io_del(r->loop, sig_io);
	conf_free(&r->conf);
	free(r->name);
	spool_watch_free(r->w);
	spool_close(r->sp);
	loop_free(r->loop);
	close(sigfd);
	return rc;
}

/* libmicrohttpd's own messages ("reached connection limit"...) through our
 * log, prefixed with cls (the server's kind: "http", "dashboard"). */
void
relayd_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];
	vsnprintf(buf, sizeof buf, fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	logmsg(LOG_WARNING, "%s: %s", (const char *)cls, buf);
}
