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
struct spool_list {
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
};

struct spool_queue {
	spool *sp;
	char name[65];
	char *path;            /* absolute */
	int fd, tmpfd, newfd, curfd; /* the queue and its subdirectories */
	int deadfd, donefd;    /* opened on first use, -1 before */
	struct spool_config cfg;
	struct spool_list ready;
	bool reaped;           /* spool_repair has run in this process */
	bool look;             /* opened with SPOOL_LOOK: a missing new/, cur/ is -1 */
	char *spare;           /* a first-block buffer to reuse (HEAD_FIRST bytes) */
	bool hint_tried;       /* QUEUE/.head was read (once per process) */
	bool hint_seen;        /* a QUEUE/.head exists, as far as we know */
	int64_t next_lease;    /* earliest live lease seen by the last reap */
	uint64_t commits;      /* import commits into it by this process (import.c) */
	/* this process as the holder of its claims (holder.c) */
	bool hold;             /* spool_queue_hold: record the claims */
	int holdfd;            /* holders/holdname, flock()ed; -1 until the first claim */
	char holdname[48];     /* ULID.PID, "" when none */
	int64_t holdsize;      /* bytes in the record */
	int64_t hold_retry;    /* making the file failed: not before this */
	spool_msg **held;      /* the claims recorded, for rewriting the record */
	size_t nheld, heldcap;
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
int64_t random_below(int64_t n);
char *xstrdup(const char *s);

/* config.c */
int config_load(spool_queue *q, struct spool_err *e);

/* list.c */
int list_scan(struct spool_list *l, int dirfd, struct spool_err *e);
const char *list_peek(struct spool_list *l);
void list_next(struct spool_list *l);
void list_insert(struct spool_list *l, const char *name);
void list_clear(struct spool_list *l);
size_t list_smallest(struct spool_list *l, char **out, size_t k);
int list_load(struct spool_list *l, const char *buf, size_t len);

/* send.c */
int64_t queue_ready(spool_queue *q, struct spool_err *e);

/* spool.c */
int queue_lock(spool_queue *q, struct spool_err *e);

/* claim.c */
int subdir_fd(spool_queue *q, const char *which, struct spool_err *e);
spool_msg *msg_new(spool_queue *q, const struct spool_name *n, struct spool_err *e);
int msg_open(spool_msg *m, struct spool_err *e);
int msg_renamed(spool_msg *m, const struct spool_name *n);
void msg_drop_head(spool_msg *m);
const char *body_start(const char *buf, size_t len);
int64_t backoff_delay(const struct spool_config *c, unsigned attempt);
int take_back(spool_queue *q, const char *name, const struct spool_name *n, int64_t due,
              const char *status, struct spool_err *e);

/* holder.c */
void holder_add(spool_msg *m);
void holder_note(spool_msg *m);
void holder_del(spool_msg *m);
void holder_close(spool_queue *q);
int holders_reap(spool_queue *q, struct spool_list *cur, int64_t now,
                 struct spool_repair *r, struct spool_err *e);

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
