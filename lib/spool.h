/* SPDX-License-Identifier: MIT */
/*
 * spool.h: the spool library, the only code that knows the on-disk layout
 * (spool-layout.md).  Commands in bin/ parse options, call these functions
 * and map the results to exit codes; the daemon composes the same pieces.
 *
 * Conventions: every function that can fail returns -1 (or NULL) and fills
 * the caller's struct spool_err with an exit code from exitcodes.h and a
 * one-line message without the program name.  The library never prints and
 * never exits.  Objects are opaque; *_free() releases what *_new()/_open()
 * returned.  Times are int64_t milliseconds since the Unix epoch.
 */
#ifndef SPOOL_H
#define SPOOL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "exitcodes.h"

struct spool_err {
	int code;       /* EX_* from exitcodes.h */
	char msg[512];  /* one line, no program name, no newline */
};

/* Fill e (code, printf-style message); returns -1.  For callers that report
 * their own errors the same way, as mq-relayd does for its config file. */
int spool_fail(struct spool_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The exit code an errno value means (ENOSPC: EX_TEMPFAIL, EACCES: EX_NOPERM,
 * SPOOL_ENOTREG: EX_DATAERR...). */
int spool_errno_code(int err);
/* The errno of a file in a spool that is not a regular file (a link, a FIFO,
 * a device, a socket, a directory), which spool_open_file refuses. */
#define SPOOL_ENOTREG EMEDIUMTYPE
/* strerror(err), but "not a regular file" for SPOOL_ENOTREG. */
const char *spool_strerror(int err);
struct stat;
/* Open a file of a spool as spool-layout.md 3.1 says every tool must: never
 * through a symbolic link, never blocking (a FIFO, a device), and only a
 * regular file.  As openat(2) (O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK and O_NOCTTY
 * are added); st, if not NULL, gets its fstat.  An fd, or -1 with errno
 * (SPOOL_ENOTREG for anything but a regular file, a link included). */
int spool_open_file(int dirfd, const char *path, int flags, mode_t mode, struct stat *st);

typedef struct spool spool;             /* an open spool root */
typedef struct spool_queue spool_queue; /* an open queue of a spool */
typedef struct spool_batch spool_batch; /* messages being written */
typedef struct spool_msg spool_msg;     /* a message this process has claimed */
typedef struct spool_job spool_job;     /* a handler running for one claimed message */
typedef struct spool_topic spool_topic; /* a topic being published to (topic.c) */
struct spool_entry;                     /* one message as listed (peek.c) */

/* ---- spool and queues (spool.c) ---- */

#define SPOOL_CREATE 0x1 /* create the root or queue directories if missing */
#define SPOOL_LOOK 0x2   /* only look (mq-stat, mq-peek): create nothing, not even a
                          * queue's missing tmp/, cur/ or new/ (read as empty) */
#define SPOOL_MARKER ".spoolmq" /* the file that says a directory is a spool */

/* dir NULL: $MQ_SPOOL, else /var/spool/mq for root, else ~/.local/state/mq.
 * Only a spool is opened (spool-layout.md 2): else EX_NOINPUT, or EX_CANTCREAT
 * with SPOOL_CREATE.  A spool that does not exist fails with EX_NOTFOUND;
 * SPOOL_CREATE makes it, but of a dir given (or $MQ_SPOOL) only its last
 * component (EX_CANTCREAT when the parent is missing). */
spool *spool_open(const char *dir, int flags, struct spool_err *e);
void spool_close(spool *sp);
const char *spool_root(const spool *sp); /* absolute path */
/* Names of every queue directory (what is not a queue, spool-layout.md 3, is
 * left out), sorted, NULL-terminated; free with spool_strv_free. */
char **spool_queues(spool *sp, struct spool_err *e);
void spool_strv_free(char **v);

/* s with control characters escaped and cut short, for an error message
 * (a static buffer: use it before the next call). */
const char *spool_printable(const char *s);
/* 1 if name is a valid queue name, 0 if not. */
int spool_queue_name_ok(const char *name);
/* Without SPOOL_CREATE a missing queue fails with EX_NOTFOUND.  A directory
 * that is not a queue (spool-layout.md 3) fails with EX_NOINPUT (EX_CANTCREAT
 * with SPOOL_CREATE), nothing created in it. */
spool_queue *spool_queue_open(spool *sp, const char *name, int flags, struct spool_err *e);
void spool_queue_close(spool_queue *q);
const char *spool_queue_name(const spool_queue *q);
const char *spool_queue_path(const spool_queue *q); /* absolute */

/* ---- per-queue settings (config.c; spool_queue_config, spool_queue_stale: spool.c) ---- */

struct spool_config {
	int64_t lease;         /* ms a claim lasts unless extended */
	long max_attempts;     /* deliveries before dead/; 0 = unlimited */
	int64_t backoff_first; /* ms before the first retry */
	int64_t backoff_cap;   /* ms, upper bound of the exponential backoff */
	int64_t retention;     /* ms a message may wait in new/; 0 = forever */
	int64_t keep_acked;    /* ms acked messages stay in done/; 0 = delete on ack */
	int64_t max_length;    /* ready messages; 0 = unlimited */
	int64_t min_free;      /* bytes free on the filesystem; 0 = no reserve */
	int64_t dedup_window;  /* ms a --id key suppresses duplicates */
	int64_t max_size;      /* bytes of one message body */
	int64_t tmp_grace;     /* ms before an abandoned tmp/ file is swept */
	int64_t dead_retention; /* ms dead letters stay in dead/; 0 = forever */
};
const struct spool_config *spool_queue_config(const spool_queue *q);
/* Set one key as a config file would: 0, -1 bad value, -2 unknown key. */
int spool_config_set(struct spool_config *c, const char *key, const char *val);
/* Read QUEUE/config again (mq-relayd on SIGHUP). */
int spool_queue_reload(spool_queue *q, struct spool_err *e);
/* 1 when the queue's path no longer names the directories q has open (the
 * queue was removed or replaced), 0 when it does. */
int spool_queue_stale(spool_queue *q);
/* Override the queue's settings for this process (mq-relayd's consumers). */
void spool_queue_set_config(spool_queue *q, const struct spool_config *c);
/* Called for every warning (unknown key) while a config file is read. */
extern void (*spool_warn_hook)(const char *msg);

/* ---- sending (send.c) ---- */

struct spool_send_opts {
	const char *const *headers; /* "Name: value" lines, NULL-terminated, or NULL */
	int64_t due;                /* deliver not before (0 = now) */
	int64_t ttl;                /* ms until it expires (0 = never) */
	const char *key;            /* dedup key (--id), or NULL */
	const char *order_key;      /* ordering key (--key), or NULL */
	int nosync;                 /* skip fsync: fast, not durable on power loss */
};

/* A --id key that can be used: 0, or -1 (EX_USAGE) before anything is written. */
int spool_key_check(const char *key, struct spool_err *e);
/* An ordering key (--key) that can be used: 1 to 200 bytes, no control
 * character: 0, or -1 (EX_USAGE) before anything is written. */
int spool_order_key_check(const char *key, struct spool_err *e);
/* Validate the "Name: value" headers a user gave, each and their total:
 * 0 or -1 (EX_USAGE). */
int spool_headers_check(const char *const *hdrs, struct spool_err *e);

spool_batch *spool_batch_new(spool_queue *q, const struct spool_send_opts *o, struct spool_err *e);
/* One message: begin, write body bytes (any number of calls), end. */
int spool_batch_begin(spool_batch *b, struct spool_err *e);
int spool_batch_write(spool_batch *b, const void *p, size_t n, struct spool_err *e);
int spool_batch_end(spool_batch *b, struct spool_err *e);
/* Copy the rest of fd into the current message (stdin or a FILE).  A
 * failed read of fd is EX_NOINPUT ("read: ..."), the caller's input, not the
 * spool's. */
int spool_batch_write_fd(spool_batch *b, int fd, struct spool_err *e);
/* Messages ended but not committed. */
size_t spool_batch_pending(const spool_batch *b);
/* Make every ended message durable and visible in new/, all or none. Returns
 * the number published.  With a key: 0 when the key was seen within the
 * dedup window (the message is dropped and *dup_of names the first id). */
long spool_batch_commit(spool_batch *b, const char **dup_of, struct spool_err *e);
/* A commit refused by the queue's limits (max-length, min-free: EX_TEMPFAIL)
 * did nothing and keeps the batch.  This waits until the limits admit it,
 * however long (an event when a message leaves new/ or cur/, and a count
 * every 2 s): 0, or -1 (another error, or a batch larger than max-length).
 * The commit may still be refused (another producer was faster): wait again. */
int spool_batch_wait_room(spool_batch *b, struct spool_err *e);
/* Drop what the batch holds, ended and open, uncommitted (its tmp/ files). */
void spool_batch_drop(spool_batch *b);
/* How many messages of the last failed commit a consumer had taken before
 * it could take them back (they stand delivered; the rest did not go). */
size_t spool_batch_gone(const spool_batch *b);
/* A full file system (ENOSPC, EDQUOT) under the batch's queue: wait, however
 * long (a look every 2 s; space has no event), until it has room for bytes
 * in files, with a margin, and over the queue's min-free.  1: it was full
 * and now has room; 0: it had room at the first look (the failure was not
 * a full disk); -1 with e (statvfs failed). */
int spool_batch_wait_disk(spool_batch *b, size_t bytes, size_t files, struct spool_err *e);
/* Id of the i-th message of the last commit. */
const char *spool_batch_id(const spool_batch *b, size_t i);
/* Unlinks what was not committed. */
void spool_batch_free(spool_batch *b);

/* A queue's limits for adding n ready messages now: max-length, min-free.
 * 0, or -1 with EX_TEMPFAIL (full, or the disk under its reserve). */
int spool_queue_admit(spool_queue *q, int64_t n, struct spool_err *e);

/* ---- publish/subscribe (topic.c): SPOOL/.topics/TOPIC/QUEUE ---- */

/* Topic names follow the queue-name rule. */
#define spool_topic_name_ok spool_queue_name_ok
/* Subscribe queue to topic, creating the queue: 1 new, 0 it was already,
 * -1. */
int spool_subscribe(spool *sp, const char *topic, const char *queue, struct spool_err *e);
/* What topic kept while it had no subscriber, to every subscriber it has
 * now (after spool_subscribe): how many, or -1. */
long spool_topic_deliver_kept(spool *sp, const char *topic, struct spool_err *e);
/* 0, or -1 (EX_NOTFOUND when queue is not subscribed).  What the queue
 * holds stays there. */
int spool_unsubscribe(spool *sp, const char *topic, const char *queue, struct spool_err *e);
/* Make topic keep what is published while it has no subscribers (on 1) or
 * refuse it (0): 0 or -1. */
int spool_topic_keep(spool *sp, const char *topic, int on, struct spool_err *e);
/* Names of every topic, and of a topic's subscribers, sorted, NULL-terminated
 * (empty when there are none); free with spool_strv_free. */
char **spool_topics(spool *sp, struct spool_err *e);
char **spool_topic_subscribers(spool *sp, const char *topic, struct spool_err *e);
struct spool_topic_info {
	bool keep;      /* keeps what it is sent until a first subscriber */
	long kept;      /* messages kept for that subscriber */
	long staged;    /* publishes interrupted, for the repair */
};
int spool_topic_info(spool *sp, const char *topic, struct spool_topic_info *ti, struct spool_err *e);
/* Messages copied into queue instead of linked (EXDEV, EMLINK), from the
 * topic's record .topics/TOPIC/.copied. */
long spool_topic_copies(spool *sp, const char *topic, const char *queue);
/* The topics queue is subscribed to, as spool_topics. */
char **spool_queue_topics(spool *sp, const char *queue, struct spool_err *e);
/* Open topic for publishing: -1 with EX_NOUSER when it has no subscribers
 * and does not keep.  Publishes into it take a shared lock, which the repair
 * waits for. */
spool_topic *spool_topic_open(spool *sp, const char *topic, struct spool_err *e);
/* A batch (written, committed and freed as any) that spool_batch_commit
 * publishes to every subscriber: each gets a hard link of the one file.
 * Subscribers that cannot take it (full, removed) are passed over, named
 * through spool_warn_hook and counted by spool_topic_missed; the commit
 * fails only when none could. */
spool_batch *spool_topic_batch(spool_topic *t, const struct spool_send_opts *o, struct spool_err *e);
long spool_topic_missed(const spool_topic *t);
void spool_topic_close(spool_topic *t); /* after spool_batch_free */
struct spool_topics_repair {
	long completed;   /* interrupted publishes past their commit, delivered to the rest */
	long undone;      /* interrupted publishes before it, removed from every subscriber */
	long delivered;   /* kept messages delivered to subscribers that had come */
};
/* Finish or undo the publishes that were interrupted (spool-layout.md 15),
 * in the topics no publisher is using.  r may be NULL. */
int spool_topics_repair(spool *sp, struct spool_topics_repair *r, struct spool_err *e);

/* ---- receiving message files with their own ids (import.c) ---- */

typedef struct spool_import spool_import;
/* 1 if id is a message id as names carry it (a ULID), 0 if not. */
int spool_id_ok(const char *id);
/* When the message of id was sent (ms), from the id itself. */
int64_t spool_id_time(const char *id);
/* 1 when q received id within its dedup window (digest, if not NULL, gets
 * what was stored with it, "" for nothing), 0 when not. */
int spool_received(spool_queue *q, const char *id, char *digest, size_t len);
/* A message file arriving for q with its own id; hop: this receiver's name,
 * refused in the file's Hop lines and added as the last one ("" for none);
 * from: the sending relay's name (NULL or "": not told), added before ours
 * unless the file's last Hop says it already. */
spool_import *spool_import_new(spool_queue *q, const char *id, const char *hop, const char *from,
                               struct spool_err *e);
/* The file's bytes in order.  -1 with EX_DATAERR (a bad header block, over
 * max-size), EX_PROTOCOL (a loop: our Hop is in it already), or an I/O code. */
int spool_import_write(spool_import *im, const void *p, size_t n, struct spool_err *e);
/* The whole file has arrived; digest is kept in the marker for later retries. */
int spool_import_end(spool_import *im, const char *digest, struct spool_err *e);
/* Make the ended imports durable in new/ and mark their ids received, one
 * sync for all of them (group commit); each then has its own result. */
void spool_import_commit(spool_import *const *v, size_t n);
/* The two halves of spool_import_commit, for a caller that waits for the
 * data sync elsewhere (mq-relayd does it in a thread, so that its loop goes
 * on taking requests): sync touches only v's imports and their files, and
 * publish must follow it, with the same v. */
void spool_import_sync(spool_import *const *v, size_t n);
void spool_import_publish(spool_import *const *v, size_t n);
/* 1 stored, 0 not stored because the id was already held, -1 failed (e). */
int spool_import_result(const spool_import *im, struct spool_err *e);
const char *spool_import_id(const spool_import *im);
spool_queue *spool_import_queue(const spool_import *im);
/* Unlinks what was not committed. */
void spool_import_free(spool_import *im);
/* A receiver killed between a commit's rename into new/ and its markers
 * left messages without one: mark every id q holds that has none (run when
 * a receiver first opens a queue).  The number of markers made, or -1. */
long spool_received_repair(spool_queue *q, struct spool_err *e);

/* ---- claiming and finishing (claim.c, settle.c, bury.c, repair.c; holders: holder.c; tending: tend.c; spool_msg_*: msg.c) ---- */

/* Claim the oldest due message under a lease: 1 claimed (*out set), 0 none
 * due (*next_due set to the earliest future due time, or 0 if new/ is
 * empty), -1 error.  Also takes back expired leases and sweeps tmp/ on its
 * first call.  Keeps the sorted listing between calls. */
int spool_claim(spool_queue *q, spool_msg **out, int64_t *next_due, struct spool_err *e);
/* Forget the listing: the next claim reads new/ again (after IN_Q_OVERFLOW). */
void spool_queue_rescan(spool_queue *q);
/* A name arrived in new/ (from inotify): merge it into the listing. */
void spool_queue_arrived(spool_queue *q, const char *name);
/* What spool_repair found and mended. */
struct spool_repair {
	long leases;        /* expired leases, and claims of holders gone, taken back */
	long expired;       /* messages past their --ttl or retention, buried (full only) */
	long tmp;           /* abandoned tmp/ files removed */
	long done;          /* acked messages past keep-acked removed (full only) */
	long ids;           /* dedup markers past dedup-window removed (full only) */
	long failed;        /* entries that could not be mended (left for the next pass) */
	int64_t next_lease; /* earliest live lease deadline, 0: none */
	long corrupt;       /* what was not a regular file in new/, moved to corrupt/ (full only) */
	long dead;          /* dead letters past dead-retention removed (full only) */
	int err;            /* errno of the first thing that could not be mended (failed > 0) */
	long keys;          /* ordering keys whose head was lost (a crash), given on */
};
#define SPOOL_REPAIR_FULL 0x1 /* also new/ expiry, done/, dead/ and ids/ (mq-stat --repair) */
/* Take back expired leases and the claims of holders that are gone (see
 * spool_queue_hold), and sweep abandoned tmp/ files, which any command may
 * do at any time; with SPOOL_REPAIR_FULL also the rest.  r may be NULL. */
int spool_repair(spool_queue *q, int flags, struct spool_repair *r, struct spool_err *e);

/* Tie this process's claims of q to its life (spool-layout.md 6.12): from
 * its first claim it keeps QUEUE/holders/ULID.PID locked and records there
 * each claim it takes; once it is gone, however it died, any repair takes
 * them back at once rather than at the end of their leases.  For consumers
 * that hold their claims while they run (mq-recv but -c, mq-relayd); a
 * claim left to the caller (-c) must keep its lease. */
void spool_queue_hold(spool_queue *q);

/* For a caller that claims many before any leaves the process (mq-recv to
 * stdout): the records of its claims wait in memory for
 * spool_queue_hold_flush, so that a batch costs one write, not one a claim.
 * Call the flush before a claim leaves the process (is written out, or
 * handed to a handler); until then a process killed keeps those claims to
 * their leases, as if no holder had been. */
void spool_queue_hold_defer(spool_queue *q);
void spool_queue_hold_flush(spool_queue *q);

/* For a consumer that goes on claiming (mq-recv -n 0, -f): when it finishes
 * the head of a key, the key's next message becomes its next claim (a run,
 * up to 32 in a row) instead of being put in new/ for anyone.  Claims so
 * taken that were never returned are given back at spool_queue_close. */
void spool_queue_runs(spool_queue *q, int on);

/* The earliest live lease deadline the last repair saw (0: none). */
int64_t spool_queue_next_lease(const spool_queue *q);
/* What time alone brings a running consumer of q: the light repair
 * once the earliest lease seen has run out, or once *next_repair has come
 * (then moved every ms on; next_repair NULL or *next_repair 0: only the
 * leases).  The claims taken back (> 0: look again), 0, or -1 with e set. */
long spool_queue_tend(spool_queue *q, int64_t now, int64_t *next_repair, int64_t every,
                      struct spool_err *e);
/* The earlier of t (0: none) and the earliest lease of q: when to wake. */
int64_t spool_queue_wake_at(const spool_queue *q, int64_t t);

/* A message claimed earlier (by -c), by id or by path: 0, or -1 with EX_NOTFOUND
 * when it is not (or no longer) claimed. */
spool_msg *spool_msg_find(spool_queue *q, const char *id_or_path, struct spool_err *e);
void spool_msg_free(spool_msg *m);
void spool_msg_free_v(spool_msg **v, size_t n); /* each of v, one hand-over of their closes */
const char *spool_msg_id(const spool_msg *m);
const char *spool_msg_path(const spool_msg *m); /* absolute path under cur/ */
const char *spool_msg_name(const spool_msg *m);
unsigned spool_msg_attempt(const spool_msg *m); /* 1 on first delivery */
int64_t spool_msg_lease(const spool_msg *m);
/* Read the body from its start, in order: bytes read, 0 at the end, -1. */
ssize_t spool_msg_read(spool_msg *m, void *buf, size_t n, struct spool_err *e);
/* A new descriptor of the file positioned at the body (for a child's stdin). */
int spool_msg_body_fd(spool_msg *m, struct spool_err *e);
/* Another descriptor of the open file (a dup: one syscall, no open), the
 * caller's to close: to hold the file past its ack and make the last close,
 * which frees its blocks (a discard each on ext4 with `discard`), off the
 * thread (mq-bridge's closer).  -1 with e filled. */
int spool_msg_dup_fd(spool_msg *m, struct spool_err *e);
/* The whole file, header block and body, for a relay to send as it is: its
 * size, and in *whole the bytes when the first read held them all (valid
 * until spool_msg_free), else NULL; *fd is the message's own descriptor to
 * pread the rest from (not to close).  -1 with errno as msg_open sets it
 * (ENOENT: the lease was lost; EBADMSG: no end of the header block). */
off_t spool_msg_file(spool_msg *m, const char **whole, int *fd, struct spool_err *e);
/* Header lines "Name: value" NULL-terminated (owned by m). */
char *const *spool_msg_headers(spool_msg *m, struct spool_err *e);

/* Each consumes nothing: the caller still frees m.  -1 with EX_NOTFOUND when
 * the lease was lost (someone else took the message back). */
int spool_ack(spool_msg *m, struct spool_err *e);
/* delay < 0: the queue's backoff.  Past max-attempts it buries instead;
 * returns 1 then, 0 when given back. */
int spool_nack(spool_msg *m, int64_t delay, const char *why, struct spool_err *e);
int spool_bury(spool_msg *m, const char *reason, const char *status, struct spool_err *e);
int spool_extend(spool_msg *m, int64_t dur, struct spool_err *e);
/* Give back without counting the delivery (shutdown): due at once. */
int spool_release(spool_msg *m, struct spool_err *e);
/* The same, due after delay ms (a peer that cannot take it yet). */
int spool_defer(spool_msg *m, int64_t delay, struct spool_err *e);

/* ---- an operator's changes (rm.c) ---- */

/* Delete a message as listed by spool_list (one unlink): 0, or -1 with
 * EX_NOTFOUND when it changed state meanwhile.  A claimed message only with
 * force (else EX_TEMPFAIL): its consumer's ack or nack then finds it gone. */
int spool_rm(spool_queue *q, const struct spool_entry *en, int force, struct spool_err *e);
/* Move a dead (or done) message back to new/ of q or of to (NULL: q), with
 * attempts reset and no expiry: 0, or -1 (EX_NOTFOUND if it is gone). */
int spool_replay(spool_queue *q, const struct spool_entry *en, spool_queue *to,
                 int nosync, struct spool_err *e);
/* Make a delayed message (a waiting retry) due now, attempts and expiry
 * kept: one rename within new/.  0, or -1 (EX_NOTFOUND: not delayed, or gone). */
int spool_due_now(spool_queue *q, const struct spool_entry *en, int nosync, struct spool_err *e);

/* ---- pausing a queue (pause.c): the marker QUEUE/paused ---- */

/* 1 when q is paused, 0 when not. */
int spool_queue_paused(spool_queue *q);
/* Create the marker (kept as it is when there is one): 0 or -1. */
int spool_queue_pause(spool_queue *q, struct spool_err *e);
/* Remove the marker (none is no error): 0 or -1. */
int spool_queue_resume(spool_queue *q, struct spool_err *e);

/* ---- holding and settling a delivery (settle.c): every consumer's part ---- */

enum spool_outcome {
	SPOOL_ACKED,   /* done */
	SPOOL_RETRY,   /* given back for a later attempt */
	SPOOL_BURIED,  /* moved to dead/ */
	SPOOL_LOST,    /* the lease was lost while it was being handled */
};
/* When the lease must next be extended (half of it left); 0 once it is lost
 * or the message settled. */
int64_t spool_msg_next_tick(const spool_msg *m);
/* Extend the lease if it is time: 0, or -1 (EX_NOTFOUND: lost for good;
 * anything else: tried again a second later). */
int spool_msg_tick(spool_msg *m, struct spool_err *e);
int spool_msg_lost(const spool_msg *m);
enum spool_do {
	SPOOL_DO_ACK,   /* handled */
	SPOOL_DO_RETRY, /* failed: counted; after delay (< 0: the queue's backoff), dead/ past max-attempts */
	SPOOL_DO_BURY,  /* can never succeed: dead/ now, with reason and status */
	SPOOL_DO_DEFER, /* not handled, not its fault: given back uncounted, due after delay */
};
struct spool_verdict {
	enum spool_do what;
	int64_t delay;
	const char *reason; /* Dead-Reason (bury) */
	const char *status; /* Dead-Status (bury, or a retry that ends in dead/) */
};
/* Apply the verdict; *out says what became of the message (SPOOL_LOST,
 * returning 0, when the lease was lost before or on the way). */
int spool_settle(spool_msg *m, const struct spool_verdict *v, enum spool_outcome *out,
                 struct spool_err *e);

/* ---- handlers (job.c): what mq-recv -x and mq-relayd's exec share ---- */

/* Fork /bin/sh -c cmd with the body on stdin and MQ_* in the environment.
 * Takes ownership of m.  On failure m is freed: given back uncounted when no
 * process could be made (fork), else left claimed for its lease to expire. */
#define SPOOL_JOB_PGRP 0x1 /* own process group: spool_job_kill reaches its children */
spool_job *spool_job_start(spool_msg *m, const char *cmd, int flags, struct spool_err *e);
/* A daemon's transfers and connections each hold a descriptor: raise the
 * soft limit towards the hard one (at most 65536); handlers started after
 * get the limit as it was. */
void spool_job_raise_nofile(void);
/* Stop the handler: SIGTERM now (escalate with SIGKILL by calling again).
 * The message is given back uncounted by spool_job_finish(..., -1, ...). */
int spool_job_kill(spool_job *j, int sig);
pid_t spool_job_pid(const spool_job *j);
int spool_job_pidfd(const spool_job *j); /* readable when the child exits */
spool_msg *spool_job_msg(const spool_job *j);
/* The message's lease is held with spool_msg_next_tick/spool_msg_tick on
 * spool_job_msg(j). */
/* Reap the child (blocking if it runs), apply ack/retry/bury by its status.
 * timed_out: 1 it was killed for running too long (a failure); -1 it was
 * stopped for shutdown (given back, not counted).  *desc: "exit 3" etc.
 * After -1 (the disk full, say) it may be called again to settle again:
 * the child is reaped only once. */
int spool_job_finish(spool_job *j, int timed_out, enum spool_outcome *out,
                     char *desc, size_t desclen, struct spool_err *e);
void spool_job_free(spool_job *j);
/* The read end of the handler's stderr (non-blocking, -1 once at its end):
 * when it is readable, call spool_job_drain. */
int spool_job_errfd(const spool_job *j);
/* Read what the handler wrote to stderr, pass it on to our stderr and keep
 * its tail for the reason of a failure (spool_job_finish drains the rest). */
void spool_job_drain(spool_job *j);
/* 1 when the handler could not be run at all (exit 126 or 127: the command
 * not found or not executable): spool_job_finish gave the message back
 * uncounted.  A configuration error: the caller stops (mq-recv, 78) or
 * pauses (mq-relayd). */
int spool_job_cannot_run(const spool_job *j);

/* ---- watching (watch.c) ---- */

typedef struct spool_watch spool_watch;
spool_watch *spool_watch_new(struct spool_err *e);
int spool_watch_fd(const spool_watch *w);
/* Watch q's new/ (and its pause marker); returns a watch descriptor. */
int spool_watch_add(spool_watch *w, spool_queue *q, struct spool_err *e);
enum spool_watch_event {
	SPOOL_WATCH_ARRIVED,  /* a name arrived in q's new/ (already merged into its listing) */
	SPOOL_WATCH_OVERFLOW, /* events were lost: every queue will read new/ again (q NULL) */
	SPOOL_WATCH_LOST,     /* q's new/ was removed or replaced: close and reopen q */
	SPOOL_WATCH_PAUSE,    /* q's pause marker came or went: see spool_queue_paused */
};
typedef void spool_watch_fn(void *arg, spool_queue *q, enum spool_watch_event ev);
/* Read pending events without blocking; 1 if there were any, 0 if not, -1. */
int spool_watch_read(spool_watch *w, spool_watch_fn *fn, void *arg, struct spool_err *e);
void spool_watch_remove(spool_watch *w, spool_queue *q);
void spool_watch_free(spool_watch *w);

/* A tally of what happens to queues (mq-stat -w), counted from inotify
 * events, so it needs only read permission: a name arriving in new/
 * unattempted is a send (or a replay), with attempts a retry; one arriving
 * in dead/ a burial; a claim leaving cur/ by unlink, or arriving in done/,
 * an ack.  Retries and burials are both counted as failed. */
typedef struct spool_tally spool_tally;
struct spool_tally_counts {
	long sent, acked, failed;
	bool lost; /* events were lost (the kernel's queue overflowed): the counts are short */
};
spool_tally *spool_tally_new(struct spool_err *e);
int spool_tally_fd(const spool_tally *t);
/* Count q's events into slot (an index of the caller's) from now on. */
int spool_tally_add(spool_tally *t, spool_queue *q, size_t slot, struct spool_err *e);
/* Add the pending events to c[slot] without blocking; 1 some, 0 none, -1 errno. */
int spool_tally_read(spool_tally *t, struct spool_tally_counts *c, size_t nslots);
void spool_tally_free(spool_tally *t);

/* ---- listing (peek.c; the JSON: peekjson.c; failures: reason.c) ---- */

enum spool_state { SPOOL_READY, SPOOL_DELAYED, SPOOL_CLAIMED, SPOOL_DEAD, SPOOL_DONE,
                   SPOOL_WAITING /* behind the head of its key, in keys/ENC/ */ };
#define SPOOL_NSTATES 6
struct spool_entry {
	enum spool_state state;
	char id[27];
	unsigned attempts;
	int64_t t;         /* due, lease deadline, burial or ack time */
	int64_t created;   /* enqueue time (from the id) */
	int64_t expires;   /* 0: none */
	int64_t size;      /* file bytes (SPOOL_LIST_SIZE), else -1 */
	int64_t body_size; /* body bytes (SPOOL_LIST_PEEK), else -1 */
	char line[81];     /* the body's first line, printable (SPOOL_LIST_PEEK) */
	char reason[128];  /* dead/: the latest Dead-Reason; new/: the last failure,
	                      "STATUS: last stderr line" (SPOOL_LIST_PEEK) */
	char key[201];     /* its ordering key (Order-Key), "" for none (SPOOL_LIST_PEEK;
	                      always for SPOOL_WAITING) */
	const char *name;  /* file name in its directory */
	const char *path;  /* absolute */
};
#define SPOOL_LIST_SIZE 0x1 /* stat each file */
#define SPOOL_LIST_PEEK 0x2 /* read each file's first block */
typedef int spool_entry_fn(const struct spool_entry *en, void *arg);
/* Calls fn for every message of q in the given states (a bit mask of
 * 1 << enum spool_state; 0 = all), in name order per directory; stops early
 * and returns fn's value when it is not 0. */
int spool_list(spool_queue *q, unsigned states, int flags, spool_entry_fn *fn, void *arg,
               struct spool_err *e);
const char *spool_state_name(enum spool_state s);
/* The JSON of a listed message (listed with SPOOL_LIST_PEEK), as mq-peek
 * --json prints it: a new json_t *, as void * so that this header needs no
 * jansson. */
void *spool_entry_json(spool_queue *q, const struct spool_entry *en);
/* The same, with the whole message: "headers" (an array of {name, value},
 * in file order), "body_size", and the body up to cap bytes (SIZE_MAX: all), as "body" when
 * it is text (UTF-8, no NUL) or "body_base64", and "body_truncated".  NULL
 * with e set when the file is gone or not a message. */
void *spool_message_json(spool_queue *q, const struct spool_entry *en, size_t cap,
                         struct spool_err *e);
/* What SPOOL_LIST_PEEK reads, for one entry listed without it (its name
 * and state as spool_list gave them): 0, or -1 when it is not a message. */
int spool_entry_peek(spool_queue *q, struct spool_entry *en);

/* One message in whatever state, for a viewer (mq-relayd's dashboard;
 * mq-peek QUEUE ID prints the file whole): read, never claimed. */
struct spool_view {
	struct spool_entry en;   /* as SPOOL_LIST_PEEK lists it */
	const char *head;        /* the header block, without its empty line */
	size_t head_len;
	const char *body;        /* the body's first body_len bytes */
	size_t body_len;
	int64_t body_size;       /* the whole body's */
	bool complete;           /* the header block ends (else all of it is head) */
	char *file;              /* what was read (head and body point into it) */
	char name[256], path[4096];
};
/* Find id in q and read its file, the body cut at max bytes: 0, or -1
 * (EX_NOTFOUND when q has no such message).  Free with spool_view_free. */
int spool_view(spool_queue *q, const char *id, size_t max, struct spool_view *v, struct spool_err *e);
void spool_view_free(struct spool_view *v);

/* The last failure of a message (spool-layout.md 6.13): of one waiting for
 * a retry its QUEUE/reasons/ID, of a dead letter its latest Dead-* headers. */
struct spool_failure {
	char status[256];       /* "exit 3", "timeout", "HTTP 500: ..." */
	int64_t at;             /* when it failed (ms), 0: not known */
	int64_t next_try;       /* waiting: when it is due again, 0 for a dead letter */
	char stderr_tail[6144]; /* the handler's last stderr lines, escaped, joined by LF */
};
/* 1 filled, 0 none known (never failed, or a claimed or done message). */
int spool_entry_failure(spool_queue *q, const struct spool_entry *en, struct spool_failure *f);

/* ---- figures of a queue (stat.c; corrupt/: corrupt.c): mq-stat, mq-relayd's /v1/stats and /metrics ---- */

#define SPOOL_STAT_NB 11 /* backlog buckets: under 1, 5, 10 ... 1280 minutes, and older */
extern const int spool_stat_buckets[SPOOL_STAT_NB - 1]; /* their upper bounds, minutes */
struct spool_stat {
	long n[SPOOL_NSTATES];            /* messages by enum spool_state */
	int64_t bytes;                    /* file bytes in all */
	int64_t bytes_by[SPOOL_NSTATES];  /* by state */
	int64_t oldest_by[SPOOL_NSTATES]; /* enqueue time of the oldest by state, 0: none */
	long hist[SPOOL_STAT_NB]; /* ready messages by age */
	int64_t now;          /* when counted */
	long corrupt;         /* entries in corrupt/: not messages (spool-layout.md 3.1) */
	bool paused;          /* QUEUE/paused exists (mq-pause) */
	long lapsed;          /* claimed messages whose lease has run out, not yet taken back */
	long keys;            /* ordering keys with messages (keys/ENC/) */
	long keys_held;       /* of them, held: their head claimed or waiting for a retry */
	int64_t oldest_held;  /* enqueue time of the oldest held head, 0: none */
	char oldest_key[201]; /* its key */
};
/* Count q's messages (names and sizes: nothing is changed). */
int spool_stat(spool_queue *q, struct spool_stat *s, struct spool_err *e);
/* The names in q's corrupt/ (spool-layout.md 3.1), sorted, NULL-terminated;
 * free with spool_strv_free. */
char **spool_corrupt_list(spool_queue *q, struct spool_err *e);
/* The JSON object mq-stat --json prints for a queue (a new json_t *, as
 * void * so that this header needs no jansson); rep may be NULL. */
void *spool_stat_json(const char *queue, const struct spool_stat *s, const struct spool_repair *rep);

/* ---- closes off the caller's thread (closer.c) ---- */

/* Start the closing threads (their signals blocked); without them, or when
 * they cannot keep up, spool_closer_put closes inline. */
void spool_closer_start(void);
/* Close each fd >= 0 of fd[0..n) (an acked message file's last descriptor). */
void spool_closer_put(const int *fd, size_t n);
/* At exit: every close handed over is done once this returns. */
void spool_closer_stop(void);

/* ---- small parsers and helpers (util.c; spool_trim: config.c) ---- */

int64_t spool_now(void);
/* The latest time a message name can hold: 13 digits of ms (year 2286).
 * Durations are at most this long, so now + a duration never overflows. */
#define SPOOL_TIME_MAX 9999999999999LL
/* s without leading and trailing blanks (the end is cut in place). */
char *spool_trim(char *s);
/* "250ms", "30s", "5m", "2h", "7d", "90" (seconds): ms, or -1. */
int64_t spool_parse_duration(const char *s);
/* "512", "64K", "64M", "1G": bytes, or -1. */
int64_t spool_parse_size(const char *s);
/* "@EPOCH", "2026-11-21T22:00:00Z", "2026-11-21 22:00[:SS]" (local), from 1970
 * to SPOOL_TIME_MAX: ms, or -1. */
int64_t spool_parse_time(const char *s);
/* RFC 3339 UTC with milliseconds into buf (>= 32 bytes). */
char *spool_fmt_time(int64_t ms, char *buf, size_t len);
/* "3s", "5m", "2h", "4d": compact age for people. */
char *spool_fmt_age(int64_t ms, char *buf, size_t len);

#endif
