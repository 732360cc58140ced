/* SPDX-License-Identifier: MIT */
/*
 * parse.h: the parsers of what mq-relayd reads from outside, apart from the
 * daemon so that fuzz/ drives the same code: the request path and the
 * request headers the receiver reads (receive.c), the token files of listen
 * and forward blocks, and the Retry-After of a peer's answer (forward.c).
 * Nothing here does I/O but reading the stream it is handed.
 */
#ifndef RELAYD_PARSE_H
#define RELAYD_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "spool.h"

#define MAX_TOKENS 4096    /* per listener, all its token files together */

struct token {
	unsigned char hash[32];  /* sha-256 of the token: compared in constant time */
	char **queues;           /* NULL-terminated; NULL: any queue */
};

/* "/v1/queues/Q/messages[/ID]" split into queue and id ("" for none): 1;
 * "/v1/queues/Q/batch": 2 (id ""); 0 if the path is neither, -1 if a part
 * does not fit its buffer.  The
 * parts are as they came: percent-encoding is never decoded (receive.c
 * turns libmicrohttpd's unescaping off), so "%2F" stays three bytes that
 * make a queue name or id invalid. */
int message_path(const char *url, char *queue, size_t qlen, char *id, size_t idlen);

/* A Hop name as conf.c allows one: 1 to 200 bytes, no blanks, commas or
 * control characters. */
bool relay_name_ok(const char *s);

/* The token of an Authorization header's "Bearer TOKEN" (a pointer into
 * h), or NULL. */
const char *bearer_token(const char *h);

/* "sha-256=:B64:" out of a Content-Digest header into out (other
 * algorithms ignored); "" when it has none, or none that fits. */
void content_digest(const char *h, char *out, size_t len);

/* An answer's header line p of len bytes (not NUL-terminated, as libcurl
 * hands it): -1 if it is not Retry-After, else its delay in seconds, 0 for
 * none usable (a date, or not from 1 to 86399). */
long retry_after(const char *p, size_t len);

/* A batch frame's head line (PROTOCOL.md 4a), without its LF: "ID SIZE"
 * or "ID SIZE sha-256=:B64:".  0 with the parts (digest "" for none), -1
 * if it is not that or a part does not fit.  The id is not checked. */
int batch_head(const char *line, size_t n, char *id, size_t idlen, long long *size, char *digest,
               size_t dlen);

/* A line of a batch's answer, without its LF: "STATUS ID TEXT".  The
 * status (100 to 999) with id and the text (a pointer into line), or -1. */
int batch_result(const char *line, size_t n, char *id, size_t idlen, const char **text, size_t *tlen);

void token_hash(const void *p, size_t n, unsigned char out[32]);

/* A listen block's token file fp (named file in messages): each line that
 * is not empty or a comment is TOKEN [QUEUE...], queues separated by blanks
 * or commas.  Appends to *v, *n (the caller frees them with tokens_free,
 * also after a failure); 0, or -1 and e (78 for a bad file). */
int tokens_parse(FILE *fp, const char *file, struct token **v, size_t *n, struct spool_err *e);
void tokens_free(struct token *t, size_t n);

/* A forward's token file: the first word of its first line that is not
 * empty or a comment.  NULL and *tok (the caller frees it), or what is
 * wrong with the file. */
const char *token_first(FILE *fp, char **tok);

/* The dashboard's password file (web.c): user:HASH a line, HASH in
 * crypt(3) form ($6$..., $y$..., $2b$...), blank lines and # comments
 * skipped. */
#define MAX_USERS 1024

struct user {
	char name[65];           /* 1 to 64 bytes, no ':' or control characters */
	char *hash;
};

/* Appends to *v, *n (the caller frees them with users_free, also after a
 * failure); 0, or -1 and e (78 for a bad file). */
int users_parse(FILE *fp, const char *file, struct user **v, size_t *n, struct spool_err *e);
void users_free(struct user *v, size_t n);

/* An Authorization header's "Basic B64(user:password)" into user and pass
 * (NUL-terminated, cut to fit is a failure): true, or false when h is not
 * that. */
bool basic_auth(const char *h, char *user, size_t ulen, char *pass, size_t plen);

/* A value of a urlencoded form body (name=value&...): the n-th (from 0) of
 * name, percent-decoded into out (NUL-terminated): its length, or -1 when
 * there is no such value or it does not fit. */
long form_value(const char *body, size_t len, const char *name, size_t nth, char *out, size_t outlen);

#endif
