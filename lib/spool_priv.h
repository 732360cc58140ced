/* SPDX-License-Identifier: MIT */
/*
 * spool_priv.h: definitions shared by the library's files only.  Nothing in
 * bin/ includes this.
 */
#ifndef SPOOL_PRIV_H
#define SPOOL_PRIV_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>

#include "spool.h"

#define ULID_LEN 26
#define TIME_DIGITS 13 /* ms since the epoch, zero padded: good until year 2286 */
#define NAME_LEN 80    /* longest file name we make, with room to spare */
#define HEAD_FIRST 16384 /* a message's first read */
#define HEAD_LIMIT 262144 /* a header block must end within this */

/* A file name T.ID.A[.E] parsed (spool-layout.md, "Names"). */
struct spool_name {
	int64_t t;         /* due time, lease deadline, burial or ack time */
	char id[ULID_LEN + 1];
	unsigned attempts; /* deliveries so far; in cur/: this delivery's number */
	int64_t exp;       /* expiry, 0 = none */
};

/* Names of one directory, with a cursor: the consumer's view of new/. */
struct name_list {
	char **v;      /* names; each malloc'd in one arena block */
	size_t n, cap;
	size_t pos;    /* first name not yet tried */
	bool sorted;   /* v[pos..n) is in order */
	size_t takes;  /* names taken since the last scan, to choose min-scan or sort */
	bool valid;    /* false: read the directory again before the next take */
	bool hint;     /* the names came from QUEUE/.head, not from new/ */
};

struct spool {
	int fd;        /* the root directory */
	char *root;    /* absolute path */
	int64_t topics_repaired; /* when spool_topics_repair last ran in this process */
};

struct spool_queue {
	spool *sp;
	char name[65];
	char *path;            /* absolute */
	int fd, tmpfd, newfd, curfd; /* the queue and its subdirectories */
	int deadfd, donefd;    /* opened on first use, -1 before */
	struct spool_config cfg;
	struct name_list ready;
	bool repaired;         /* spool_repair has run in this process */
	bool look;             /* opened with SPOOL_LOOK: a missing new/, cur/ is -1 */
	char *spare;           /* a first-block buffer to reuse (HEAD_FIRST bytes) */
	bool hint_tried;       /* QUEUE/.head was read (once per process) */
	bool hint_seen;        /* a QUEUE/.head exists, as far as we know */
	int64_t next_lease;    /* earliest live lease seen by the last repair */
	uint64_t commits;      /* import commits into it by this process (import.c) */
	bool marks_missing;    /* a received/ marker could not be written (import.c) */
	/* this process as the holder of its claims (holder.c) */
	bool hold;             /* spool_queue_hold: record the claims */
	int holdfd;            /* holders/holdname, flock()ed; -1 until the first claim */
	char holdname[48];     /* ULID.PID, "" when none */
	int64_t holdsize;      /* bytes in the record */
	int64_t hold_retry;    /* making the file failed: not before this */
	bool hold_defer;       /* spool_queue_hold_defer: records wait for a flush */
	char *holdbuf;         /* records not yet written (HOLD_BUF bytes) */
	size_t holdlen;
	spool_msg **held;      /* the claims recorded, for rewriting the record */
	size_t nheld, heldcap;
	/* ordering by key (key.c) */
	int keysfd;            /* keys/, -1 until used */
	bool runs;             /* spool_queue_runs: a key's next message is our next claim */
	spool_msg **pend;      /* claims taken ahead by runs, returned by spool_claim first */
	size_t npend, pendpos, pendcap;
	struct keycache *kc;   /* listings of keys/ENC/, CACHE_SLOTS of them */
};

struct spool_msg {
	spool_queue *q;
	struct spool_name n;   /* as in cur/ */
	char name[NAME_LEN];
	char *path;            /* absolute, kept in step with name */
	int fd;                /* -1 until opened */
	off_t body_off, size;  /* size of the whole file */
	char *head;            /* the file's first block, read once */
	size_t headlen;        /* bytes in head */
	bool whole;            /* head holds the whole file */
	bool eof;              /* spool_msg_read has returned 0 */
	size_t headcap;        /* bytes allocated for head */
	char **headers;        /* parsed on demand */
	off_t rpos;            /* next body byte spool_msg_read returns (file offset) */
	bool done;             /* acked, given back or buried */
	int64_t next_tick;     /* when the lease is next extended (0: half of it left) */
	bool lost;             /* an extension found it gone: someone else has it */
	bool held;             /* in q->held: recorded in our holder file */
	const char *stderr_tail; /* the handler's stderr, escaped lines (reason.c), or NULL */
	char *kenc;            /* its Order-Key, encoded (a keys/ name), or NULL */
	char krec[NAME_LEN];   /* its name in keys/ENC/, "" while not known */
	bool kentered;         /* known to be its key's head (a run's claim) */
};

/* err.c */
int spool_fail_errno(struct spool_err *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* name.c */
#define ATTEMPTS_MAX 1000000 /* the largest A a name carries (spool-layout.md 4) */
/* A time as a name holds it: now + the longest duration is past its 13
 * digits, and means "never". */
static inline int64_t
name_time(int64_t t)
{
	return t < 0 ? 0 : t > SPOOL_TIME_MAX ? SPOOL_TIME_MAX : t;
}
int name_parse(const char *s, struct spool_name *n);
void name_format(char *buf, size_t len, const struct spool_name *n);
void ulid_new(char out[ULID_LEN + 1]);
int64_t ulid_time(const char *id);
int ulid_ok(const char *s);

/* util.c */
int fsync_dir(int fd);
int write_all(int fd, const void *p, size_t n);
struct iovec;
int writev_all(int fd, struct iovec *v, int n); /* all of v, or -1 (errno) */
int64_t random_below(int64_t n);
char *xstrdup(const char *s);
/* qsort/bsearch order of an array of strings (char *) */
int strv_cmp(const void *a, const void *b);

/* config.c */
int config_load(spool_queue *q, struct spool_err *e);

/* list.c */
int list_scan(struct name_list *l, int dirfd, struct spool_err *e);
const char *list_peek(struct name_list *l);
void list_next(struct name_list *l);
void list_insert(struct name_list *l, const char *name);
void list_clear(struct name_list *l);
size_t list_smallest(struct name_list *l, char **out, size_t k);
int list_load(struct name_list *l, const char *buf, size_t len);

/* send.c */
int64_t queue_ready(spool_queue *q, struct spool_err *e);
int encode_key(const char *key, char *out, size_t len);
/* 1 seen (the first id then in dedup_first()), 0 not, -1 */
int dedup_seen(spool_queue *q, int idsfd, const char *enc, struct spool_err *e);
const char *dedup_first(void);
int batch_sync(spool_batch *b, struct spool_err *e);
void batch_set_topic(spool_batch *b, spool_topic *t);
spool_topic *batch_topic(const spool_batch *b);
size_t batch_count(const spool_batch *b);
const char *batch_name(const spool_batch *b, size_t i);
const struct spool_send_opts *batch_opts(const spool_batch *b);
const char *batch_key(const spool_batch *b); /* --key encoded, "" for none or delayed */
void batch_finish(spool_batch *b, bool committed);

/* topic.c */
long topic_commit(spool_batch *b, const char **dup_of, struct spool_err *e);

/* spool.c */
int queue_lock(spool_queue *q, struct spool_err *e);
int subdir_fd(spool_queue *q, const char *which, struct spool_err *e);

/* msg.c */
spool_msg *msg_new(spool_queue *q, const struct spool_name *n, struct spool_err *e);
int msg_open(spool_msg *m, struct spool_err *e);
int msg_renamed(spool_msg *m, const struct spool_name *n);
void msg_drop_head(spool_msg *m);
const char *body_start(const char *buf, size_t len);

/* claim.c */
/* n (in new/ or cur/ of q) is past its expiry or the queue's retention. */
bool name_expired(const spool_queue *q, const struct spool_name *n, int64_t now);
int move_to_cur(spool_queue *q, int fromfd, const char *from, const struct spool_name *n,
                spool_msg **out, struct spool_err *e);

/* settle.c */
int64_t backoff_delay(const struct spool_config *c, unsigned attempt);

/* bury.c */
int bury_from(spool_queue *q, int fromfd, const char *from, const struct spool_name *n,
              const char *reason, const char *status, struct spool_err *e);

/* repair.c */
int take_back(spool_queue *q, const char *name, const struct spool_name *n, int64_t due,
              const char *status, struct spool_err *e);

/* reason.c (spool-layout.md 6.13) */
#define REASON_RAW 2048       /* bytes of a handler's stderr kept: its tail */
#define REASON_LINES 20       /* lines of it kept */
#define REASON_TAIL_OUT 6144  /* the tail, escaped */
#define REASON_GRACE (60 * 1000) /* ms: a reason younger than this is never swept */
/* The last REASON_LINES lines of raw[0..len), control characters and \
 * escaped, lines joined by LF (cut: raw starts in the middle of a line). */
size_t reason_tail_lines(const char *raw, size_t len, bool cut, char *out, size_t outlen);
/* "NAME: line\n" for each line of tail (NULL: none) into buf: bytes written. */
size_t reason_header_lines(const char *name, const char *tail, char *buf, size_t len);
/* QUEUE/reasons/ID of m, a retry due at next_try: best effort, never fails. */
void reason_write(spool_queue *q, const spool_msg *m, const char *status, int64_t next_try);
void reason_remove(spool_queue *q, const char *id);
long reason_sweep(spool_queue *q, int64_t now);

/* watch.c */
/* An inotify fd that becomes readable when a name leaves q's new/ or cur/
 * (a claim, an ack, a deletion), or -1. */
int room_watch(spool_queue *q, struct spool_err *e);
/* Wait up to ms for such an event, and read them all. */
void room_wait(int fd, int ms);

/* holder.c */
void holder_add(spool_msg *m);
void holder_note(spool_msg *m);
void holder_del(spool_msg *m);
void holder_close(spool_queue *q);
void holder_flush(spool_queue *q);
int holders_reap(spool_queue *q, struct name_list *cur, int64_t now,
                 struct spool_repair *r, struct spool_err *e);

/* key.c (spool-layout.md 16) */
int key_of_head(const char *h, size_t len, char *out, size_t outlen);
/* Put from (in fromfd) into keys/ENC/name; the head (linked into new/) when
 * the key was free: 1, 0 waiting, -1. */
int key_publish(spool_queue *q, int fromfd, const char *from, const char *name, const char *enc,
                bool nosync, struct spool_err *e);
/* A keyed message just claimed: 1 deliver it (the key's head), 0 it was set
 * to wait in keys/ENC/ (m is done), -1. */
int key_enter(spool_msg *m, struct spool_err *e);
void key_advance(spool_msg *m);
/* The Order-Key of the message file dirfd/name, encoded: 1, or 0 for none. */
int key_of_file(int dirfd, const char *name, char *enc, size_t len);
/* The message n of key enc was deleted (mq-rm): its key goes on. */
void key_removed(spool_queue *q, const struct spool_name *n, const char *enc);
int key_dirfd(spool_queue *q);
spool_msg *key_pending(spool_queue *q);
void key_close(spool_queue *q);
long key_repair(spool_queue *q, bool full, long *failed);
int strncmp_ulid(const void *a, const void *b);
int key_decode(const char *enc, char *out, size_t len);
typedef int key_fn(void *arg, int keysfd, const char *enc, const char *const *names, size_t n);
int key_each(spool_queue *q, key_fn *fn, void *arg);

/* corrupt.c */
/* A claimed message msg_open could not open (errno err): not a regular file
 * into corrupt/, unreadable (EACCES) into dead/ as it is.  1 done (m is
 * settled), 0 not such an error, -1. */
int msg_set_aside(spool_msg *m, int err, struct spool_err *e);
/* A message just claimed: 1 it can be delivered (its first block is read),
 * 0 it could not and was buried or set aside (reported through
 * spool_warn_hook), -1 error (left claimed). */
int claim_check(spool_msg *m, struct spool_err *e);
/* Move what is not a regular file under a message name in new/ into
 * corrupt/: the number moved, or -1. */
long repair_corrupt(spool_queue *q, struct spool_err *e);

#endif
