/* SPDX-License-Identifier: MIT */
/*
 * relayd.h: what the parts of mq-relayd share.  main.c owns one struct
 * relayd and hands it to every module: conf.c reads the file into a struct
 * conf; queues.c watches the queues of the consumers and claims for them;
 * exec.c runs handlers (lib/job.c), forward.c PUTs message files to peers
 * (libcurl), receive.c is the HTTP server (libmicrohttpd).  Only forward.c
 * and receive.c include curl and microhttpd headers; lib/ includes neither.
 */
#ifndef RELAYD_H
#define RELAYD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <syslog.h>

#include "cli.h"
#include "loop.h"

#define REOPEN_EVERY 1000  /* ms between tries to reopen a queue that went away */
#define ERROR_BACKOFF 1000 /* ms a consumer rests after an error claiming */

enum consumer_kind { CONSUME_EXEC, CONSUME_FORWARD };

struct consumer {
	enum consumer_kind kind;
	char queue[65];
	long concurrency;
	char *overrides;       /* "key\0value\0..." as given, applied after the queue's config */
	size_t noverrides;
	/* consume QUEUE CMD */
	char *cmd;
	int64_t timeout;       /* ms a handler may run; 0 = no limit */
	/* forward QUEUE URL */
	char *url;             /* the peer's base URL, without a trailing slash */
	char *to;              /* the queue on the peer */
	char *token_file, *tls_ca, *tls_cert, *tls_key;
	long batch;            /* messages in one request at most (1: a PUT each) */
	struct fwd *fwd;       /* forward.c's state of this forward */
	/* while it runs */
	spool_queue *q;        /* NULL while the queue is missing */
	long running;
	long width;            /* a forward's concurrency now (0: all of it): less while
	                        * its peer turns connections away (forward.c) */
	int64_t next_due;      /* earliest future message seen, 0 = none */
	int64_t rest_until;    /* after an error, or while the queue is missing */
	bool retired;          /* removed by a reload: finish what runs, claim nothing */
	bool gone;             /* its directory went away: reopen it when it is back, do not create */
	bool cmd_broken;       /* its command cannot run (126, 127): paused, said once */
	bool paused;           /* its queue is paused (mq-pause): claim nothing, as last seen */
	struct loop_timer wake;
	struct consumer *next;
};

/* How many handlers or transfers the consumer may have running now. */
static inline long
consumer_width(const struct consumer *c)
{
	return c->width > 0 && c->width < c->concurrency ? c->width : c->concurrency;
}

struct listener {
	char *addr;            /* "ADDR:PORT" as written */
	char **token_files;    /* NULL-terminated */
	size_t ntoken_files;
	char *tls_cert, *tls_key, *tls_client_ca;
	long max_connections, max_per_address;
	int64_t request_timeout;
	int line;              /* where it was configured, for messages */
	struct listener *next;
};

/* dashboard ADDR:PORT: the operators' page (web.c) */
struct dashboard {
	char *addr;            /* "ADDR:PORT" as written */
	char *password_file;   /* user:HASH lines (crypt(3)); NULL: no login, loopback only */
	char *tls_cert, *tls_key;
	bool actions;          /* actions on: replay, delete, pause, resume (POST) */
	long max_connections;
	int line;
};

struct conf {
	char *spool;
	char *name;            /* this relay's name in Hop headers (NULL: host:spool) */
	int64_t rescan;        /* safety rescan period */
	int64_t stop_timeout;  /* how long SIGTERM waits for handlers and transfers */
	int64_t kill_grace;    /* TERM to KILL */
	struct consumer *consumers;
	struct listener *listeners;
	struct dashboard *dashboard; /* NULL: none */
};

/* A delivery in progress: a running handler (exec.c) or a transfer
 * (forward.c), which embed it first. */
struct work {
	struct consumer *c;
	spool_queue *q;        /* the queue object its message belongs to */
	struct work *next;
};

/* queue objects of retired consumers, kept while their deliveries run */
struct old_queue {
	spool_queue *q;
	struct old_queue *next;
};

/* Counters for /metrics and /v1/stats. */
struct counters {
	long long received, forwarded, retried, dead, replayed, handled;
};

struct relayd {
	const char *conf_path, *dir;
	struct conf conf;
	char *name;            /* the Hop name in use */
	spool *sp;
	spool_watch *w;
	struct loop *loop;
	struct work *work;     /* every delivery in progress */
	struct old_queue *old_queues;
	struct loop_timer rescan_timer, check_timer;
	bool stopping;
	int64_t stop_deadline;
	struct counters n;
	struct receiver *rx;   /* receive.c, NULL without listen lines */
	struct fwd_multi *fm;  /* forward.c, NULL until the first forward */
	struct web *web;       /* web.c, NULL without a dashboard line */
};

/* main.c */
extern int log_verbose, log_syslog;
void logmsg(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void earlier(int64_t *t, int64_t x);

/* conf.c */
int conf_read(const char *path, struct conf *c, struct spool_err *e);
FILE *conf_fopen(const char *path); /* a regular file only, never blocking */
char *conf_slurp(const char *path, struct spool_err *e); /* a whole file, malloc'd */
struct sockaddr_storage;
int conf_sockaddr(const char *addr, struct sockaddr_storage *ss, bool *v6); /* ADDR:PORT */
void conf_free(struct conf *c);
void consumer_free(struct consumer *k);
/* 1 if a and b are the same consumer (a reload keeps its queue and work). */
int consumer_same(const struct consumer *a, const struct consumer *b);

/* queues.c */
void queues_open(struct relayd *r, struct consumer *c);
void queues_drop(struct relayd *r, spool_queue *q);
void queues_gc(struct relayd *r);
void queues_apply_overrides(struct consumer *c);
void queues_on_watch(void *arg, uint32_t events);
void queues_rescan(struct relayd *r, const char *why);
/* Open, claim and start for every consumer that can; arm their timers. */
void queues_pass(struct relayd *r);
void queues_forget_retired(struct relayd *r);
void queues_init(struct relayd *r);
void work_add(struct relayd *r, struct work *w, struct consumer *c);
void work_remove(struct relayd *r, struct work *w);
/* The consumer has a free slot again, or a reason to look at its queue. */
void consumer_poke(struct relayd *r, struct consumer *c, int64_t at);

/* exec.c: consumers that run a command */
void exec_start(struct relayd *r, struct consumer *c, spool_msg *m);
void exec_stop_all(struct relayd *r);   /* shutdown: stop-timeout reached */
long exec_running(const struct relayd *r);

/* forward.c: consumers that PUT to a peer */
int forward_init(struct relayd *r, struct consumer *c, struct spool_err *e);
int forward_check(struct consumer *c, struct spool_err *e); /* -n: its token file */
void forward_start(struct relayd *r, struct consumer *c, spool_msg *m);
/* The end of a dispatch: send what forward_start gathered into a batch. */
void forward_flush(struct relayd *r, struct consumer *c);
void forward_adopt(struct relayd *r, struct consumer *from, struct consumer *to);
void forward_free(struct relayd *r, struct consumer *c);
void forward_stop_all(struct relayd *r);
void forward_shutdown(struct relayd *r);
/* JSON of a forward's state for /v1/stats (a json_t *, as void). */
void *forward_state_json(const struct consumer *c);
/* Prometheus lines of every forward's counters into f. */
void forward_metrics(struct relayd *r, void *f);

/* receive.c: the HTTP server */
/* closer.c: closes that may wait on the disk (a file's blocks freed), off the loop */

/* offload.c: one call at a time in a thread, its end a callback in the loop */
struct offload;
struct offload *offload_new(struct loop *l, void (*done)(void *), void *arg);
bool offload_busy(const struct offload *o);
void offload_run(struct offload *o, void (*fn)(void *), void *arg); /* when not busy */
void offload_wait(struct offload *o); /* until the call ends; done is not called */
void offload_free(struct offload *o);

int receive_start(struct relayd *r, struct spool_err *e);
int receive_reload(struct relayd *r, const struct conf *nc, struct spool_err *e);
void receive_pass(struct relayd *r);    /* group commit of what arrived this pass */
void receive_stop(struct relayd *r);
int receive_check(const struct conf *c, struct spool_err *e); /* -n: token and TLS files */
long long receive_answers(const struct relayd *r, int cls); /* answers of class cls (2 = 2xx) */
void *receive_stats_json(struct relayd *r); /* json_t * of GET /v1/stats */
char *receive_metrics(struct relayd *r);    /* GET /metrics, malloc'd */

/* web.c: the operators' page (dashboard) */
int web_start(struct relayd *r, struct spool_err *e);
int web_reload(struct relayd *r, const struct conf *nc, struct spool_err *e);
void web_stop(struct relayd *r);
int web_check(const struct conf *c, struct spool_err *e); /* -n: its password file, TLS files */
/* 1 when a dashboard address ("ADDR:PORT") is on loopback (127/8, [::1]). */
int dashboard_loopback(const char *addr);

#include <stdarg.h>
void relayd_mhd_log(void *cls, const char *fmt, va_list ap); /* main.c: MHD's logger */

#endif
