/* SPDX-License-Identifier: MIT */
/*
 * receive.c: the relay's HTTP server (libmicrohttpd), one daemon per
 * `listen` line, driven by mq-relayd's loop through libmicrohttpd's epoll fd
 * (no thread of its own).  The protocol is PROTOCOL.md.
 *
 * PUT /v1/queues/Q/messages/ID streams a message file into tmp/ (lib/
 * import.c).  Everything that can be decided from the request line and
 * headers is answered before the body is read (with Expect: 100-continue the
 * client sends nothing more): token, names, size, a full queue, an id held
 * already.  A request whose body is complete is suspended and joins the
 * group commit of this loop pass (receive_pass): one sync for all of them,
 * then each is resumed and answered, so 201 means durable.
 *
 * POST /v1/queues/Q/batch is many PUTs in one request (PROTOCOL.md 4a):
 * frames "ID SIZE [DIGEST]\n" and the file, each checked as a PUT's
 * headers and body are, imported as a PUT's body is, and committed in the
 * same group commit; the answer has a status line for each frame.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "parse.h"
#include "relayd.h"

#define RETRY_FULL 5  /* s: Retry-After for a full queue or disk */

struct server {
	struct receiver *rx;
	struct MHD_Daemon *d;
	struct loop_io *io;
	struct loop_timer timer;
	char *addr;
	struct token *tokens;
	size_t ntokens;
	bool need_token;         /* token-file given: every write needs a token */
	gnutls_certificate_credentials_t ca; /* tls-client-ca, to check a client's certificate */
	bool client_certs;
	char *mem_cert, *mem_key, *mem_ca;
	struct server *next;
};

enum req_state { REQ_BODY, REQ_DISCARD, REQ_PENDING, REQ_ANSWER };

#define BATCH_MAX 1024 /* frames in one batch: each holds a file open until the commit */

/* A frame of a batch: the message it carries and its answer. */
struct item {
	char id[40];
	int status;             /* 0: waiting for the commit (im set) */
	char *text;             /* the answer line's text */
	spool_import *im;
	char want[128];         /* the digest of its head line, "" none */
};

struct req {
	struct server *s;
	struct MHD_Connection *conn;
	enum req_state state;
	bool put;               /* PUT a message file; else POST a body */
	bool split;             /* POST ?split=lines */
	spool_queue *q;
	spool_import *im;
	spool_batch *b;
	bool line_open;         /* POST split: a line is being written */
	bool batch;             /* POST /batch: frames of message files */
	struct item *items;     /* the batch's frames, in order */
	size_t nitems, capitems;
	size_t npend;           /* of them, waiting for the group commit */
	char head[192];         /* the frame's head line as it arrives */
	size_t headlen;
	long long left;         /* bytes of the frame's file still to come */
	bool in_frame;          /* reading a frame's file (else a head line) */
	bool skip;              /* ... and dropping it: its answer is set */
	char from[201];         /* Mq-Relay, for every frame */
	EVP_MD_CTX *md;
	char want[128];         /* the Content-Digest the client sent, "" none */
	int status;             /* the answer */
	char *body;             /* its text */
	const char *type;
	int retry_after;        /* s, 0: none */
	char location[160];
	struct req *next;       /* in the group commit */
};

struct cached_queue {
	spool_queue *q;
	unsigned long checked;  /* the pass that last found it not stale */
	struct cached_queue *next;
};

struct receiver {
	struct relayd *r;
	struct loop_timer commit; /* armed for "now" while requests wait for the group commit */
	struct server *servers;
	struct cached_queue *queues;
	struct cached_queue *stale;  /* replaced while requests may hold them: freed at stop */
	struct req *pending;    /* bodies complete, waiting for the group commit */
	size_t npending;
	struct offload *sync;   /* the thread of the commits' data sync (NULL: none) */
	struct req *syncing;    /* the group being committed */
	spool_import **sv;      /* its imports, in arrival order */
	size_t sn;
	unsigned long pass;     /* loop passes: a queue is checked once a pass */
	long long by_status[6]; /* answers by class: 1xx..5xx */
};

/* ---- answers ---- */

static void
set_answer(struct req *rq, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
set_answer(struct req *rq, int status, const char *fmt, ...)
{
	va_list ap;
	free(rq->body);
	rq->body = NULL;
	va_start(ap, fmt);
	if (vasprintf(&rq->body, fmt, ap) < 0)
		rq->body = NULL;
	va_end(ap);
	rq->status = status;
	rq->type = "text/plain; charset=utf-8";
}

static enum MHD_Result
send_answer(struct req *rq)
{
	const char *b = rq->body ? rq->body : "";
	struct MHD_Response *res =
		MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
	if (!res)
		return MHD_NO;
	MHD_add_response_header(res, "Content-Type", rq->type ? rq->type : "text/plain");
	MHD_add_response_header(res, "Cache-Control", "no-store");
	MHD_add_response_header(res, "X-Content-Type-Options", "nosniff");
	if (rq->retry_after) {
		char ra[16];
		snprintf(ra, sizeof ra, "%d", rq->retry_after);
		MHD_add_response_header(res, "Retry-After", ra);
	}
	if (rq->location[0])
		MHD_add_response_header(res, "Location", rq->location);
	enum MHD_Result ok = MHD_queue_response(rq->conn, (unsigned)rq->status, res);
	MHD_destroy_response(res);
	int cls = rq->status / 100;
	if (cls >= 1 && cls <= 5)
		rq->s->rx->by_status[cls]++;
	rq->state = REQ_ANSWER;
	return ok;
}

/* The status a library error means to an HTTP client; *retry: the
 * Retry-After it calls for (0: none). */
static int
err_status(const struct spool_err *e, int *retry)
{
	*retry = 0;
	switch (e->code) {
	case EX_USAGE:
		return 400;
	case EX_DATAERR:
		return strstr(e->msg, "size limit") ? 413 : 400;
	case EX_PROTOCOL:
		return 508;
	case EX_TEMPFAIL:
		/* full (max-length): 429; the disk under its reserve or full: 503/507 */
		*retry = RETRY_FULL;
		return strstr(e->msg, "is full") ? 429 : strstr(e->msg, "reserve") ? 503 : 507;
	case EX_NOPERM:
		return 500;
	default:
		*retry = RETRY_FULL;
		return 500;
	}
}

static void
answer_err(struct req *rq, const struct spool_err *e)
{
	int retry, status = err_status(e, &retry);
	set_answer(rq, status, "%s\n", e->msg);
	if (retry)
		rq->retry_after = retry;
}

/* ---- tokens ---- */

/* Token files: one token a line, then the queues it may write (none: any). */
static int
tokens_read(char *const *files, struct token **out, size_t *nout, struct spool_err *e)
{
	struct token *v = NULL;
	size_t n = 0;
	for (char *const *f = files; f && *f; f++) {
		struct stat st;
		int fd = open(*f, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		FILE *fp = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (!fp) {
			spool_fail(e, EX_CONFIG, "token-file %s: %s", *f, strerror(errno));
			if (fd >= 0)
				close(fd);
			goto fail;
		}
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
			spool_fail(e, EX_CONFIG, "token-file %s: must be a regular file readable by its owner only",
			           *f);
			fclose(fp);
			goto fail;
		}
		int rc = tokens_parse(fp, *f, &v, &n, e);
		fclose(fp);
		if (rc != 0)
			goto fail;
	}
	*out = v, *nout = n;
	return 0;
fail:
	tokens_free(v, n);
	return -1;
}

/* 0 allowed, 401 no or unknown token, 403 a token that may not write queue. */
static int
authorize(struct server *s, struct MHD_Connection *conn, const char *queue)
{
	if (!s->need_token)
		return 0;
	const char *h = bearer_token(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
	if (!h)
		return 401;
	unsigned char hash[32];
	token_hash(h, strlen(h), hash);
	struct token *found = NULL;
	for (size_t i = 0; i < s->ntokens; i++) /* every one, so the time says nothing */
		if (CRYPTO_memcmp(hash, s->tokens[i].hash, 32) == 0)
			found = &s->tokens[i];
	if (!found)
		return 401;
	if (!found->queues || !queue)
		return 0;
	for (char **q = found->queues; *q; q++)
		if (strcmp(*q, queue) == 0)
			return 0;
	return 403;
}

/* ---- TLS client certificates ---- */

static bool
client_cert_ok(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!ci || !ci->tls_session)
		return false;
	gnutls_session_t tls = (gnutls_session_t)ci->tls_session;
	unsigned int status = 0, n = 0;
	if (!gnutls_certificate_get_peers(tls, &n) || n == 0)
		return false;
	if (gnutls_certificate_verify_peers2(tls, &status) != GNUTLS_E_SUCCESS)
		return false;
	return status == 0;
}

/* ---- queues ---- */

static spool_queue *
queue_get(struct receiver *rx, const char *name, int flags, struct spool_err *e)
{
	for (struct cached_queue **p = &rx->queues; *p; p = &(*p)->next) {
		struct cached_queue *c = *p;
		if (strcmp(spool_queue_name(c->q), name) != 0)
			continue;
		if (c->checked == rx->pass)
			return c->q;
		if (!spool_queue_stale(c->q)) {
			c->checked = rx->pass;
			return c->q;
		}
		/* removed or replaced under us: open it again (requests may still
		 * hold the old one, so it is kept until the end) */
		*p = c->next;
		c->next = rx->stale;
		rx->stale = c;
		break;
	}
	struct cached_queue *c = calloc(1, sizeof *c);
	if (!c)
		return spool_fail(e, EX_OSERR, "out of memory"), NULL;
	if (!(c->q = spool_queue_open(rx->r->sp, name, flags, e))) {
		free(c);
		return NULL;
	}
	/* ids committed by a receiver killed before it marked them */
	struct spool_err re = {0};
	long made = spool_received_repair(c->q, &re);
	if (made < 0)
		logmsg(LOG_ERR, "%s: %s", name, re.msg);
	else if (made) /* after a crash, or messages that came by POST or mq-send */
		logmsg(LOG_INFO, "%s: %ld held messages had no received/ marker: marked", name, made);
	c->checked = rx->pass;
	c->next = rx->queues;
	rx->queues = c;
	return c->q;
}

/* ---- requests ---- */

static void batch_body(struct req *rq, const char *p, size_t n);
static enum MHD_Result batch_done(struct req *rq);

/* Keep the path as it came: percent-encoding never reaches a file name
 * (a '%' makes a name invalid, so %2F or %2E%2E are refused, not decoded). */
static size_t
no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls, (void)c;
	return strlen(s);
}

static void
digest_of(struct req *rq, char *out, size_t len)
{
	unsigned char md[32];
	unsigned int n = 0;
	unsigned char b64[64];
	EVP_DigestFinal_ex(rq->md, md, &n);
	EVP_EncodeBlock(b64, md, (int)n);
	snprintf(out, len, "sha-256=:%s:", b64);
}

/* "sha-256=:B64:" out of a Content-Digest header (other algorithms ignored). */
static void
wanted_digest(struct req *rq)
{
	const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, "Content-Digest");
	content_digest(h, rq->want, sizeof rq->want);
}

/* Answer with j (taken), dumped with jansson's flags. */
static enum MHD_Result
answer_json(struct req *rq, int status, json_t *j, size_t flags)
{
	char *text = json_dumps(j, flags);
	json_decref(j);
	set_answer(rq, status, "%s\n", text ? text : "{}");
	free(text);
	rq->type = "application/json";
	return send_answer(rq);
}

static enum MHD_Result
serve_get(struct req *rq, const char *url)
{
	struct relayd *r = rq->s->rx->r;
	if (strcmp(url, "/v1/health") == 0)
		return answer_json(rq, 200, json_pack("{s:s, s:s}", "status", "ok", "name", r->name),
		                   JSON_INDENT(2));
	if (strcmp(url, "/v1/stats") == 0)
		return answer_json(rq, 200, receive_stats_json(r), JSON_INDENT(2));
	if (strcmp(url, "/metrics") == 0) {
		char *m = receive_metrics(r);
		set_answer(rq, m ? 200 : 500, "%s", m ? m : "out of memory\n");
		free(m);
		rq->type = "text/plain; version=0.0.4; charset=utf-8";
		return send_answer(rq);
	}
	set_answer(rq, 404, "no such resource: %s\n", spool_printable(url));
	return send_answer(rq);
}

static int
same_id(const struct spool_entry *en, void *arg)
{
	return strcmp(en->id, arg) == 0;
}

/* q has a message of id in some state (one listing: HEAD is not a hot path). */
static int
holds(spool_queue *q, const char *id)
{
	return spool_list(q, 0, 0, same_id, (void *)id, NULL) == 1;
}

/* The first call for a request: everything decided before the body. */
static enum MHD_Result
begin(struct server *s, struct MHD_Connection *conn, const char *url, const char *method,
      void **con_cls)
{
	struct receiver *rx = s->rx;
	struct spool_err e = {0};
	struct req *rq = calloc(1, sizeof *rq);
	if (!rq)
		return MHD_NO;
	rq->s = s;
	rq->conn = conn;
	*con_cls = rq;
	if (s->client_certs && !client_cert_ok(conn)) {
		set_answer(rq, 403, "a client certificate signed by the configured CA is required\n");
		return send_answer(rq);
	}
	bool get = strcmp(method, "GET") == 0, head = strcmp(method, "HEAD") == 0;
	bool put = strcmp(method, "PUT") == 0, post = strcmp(method, "POST") == 0;
	char queue[80], id[40];
	int mp = message_path(url, queue, sizeof queue, id, sizeof id);
	if (mp == 0 && (get || head))
		return serve_get(rq, url);
	if (mp == 0) {
		set_answer(rq, 404, "no such resource: %s\n", spool_printable(url));
		return send_answer(rq);
	}
	if (mp < 0 || !spool_queue_name_ok(queue)) {
		set_answer(rq, 400, "bad queue name in %s\n", spool_printable(url));
		return send_answer(rq);
	}
	if (!(put || post || head || get) || (post && id[0]) || ((put || head || get) && !id[0])) {
		set_answer(rq, 405, "%s not allowed on %s\n", method, spool_printable(url));
		return send_answer(rq);
	}
	if (id[0] && !spool_id_ok(id)) {
		set_answer(rq, 400, "bad message id '%s'\n", spool_printable(id));
		return send_answer(rq);
	}
	int auth = authorize(s, conn, queue);
	if (auth) {
		set_answer(rq, auth, auth == 401 ? "a valid bearer token is required\n" :
		                                   "this token may not write queue %s\n", queue);
		return send_answer(rq);
	}
	if (!(rq->q = queue_get(rx, queue, head || get ? 0 : SPOOL_CREATE, &e))) {
		if ((head || get) && e.code == EX_NOTFOUND)
			set_answer(rq, 404, "%s", "");
		else
			answer_err(rq, &e);
		return send_answer(rq);
	}
	if (head || get) {
		int held = spool_received(rq->q, id, NULL, 0) || holds(rq->q, id);
		set_answer(rq, held ? 200 : 404, "%s", "");
		return send_answer(rq);
	}
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
	long long len = cl ? strtoll(cl, NULL, 10) : -1;
	/* a message file is its header block (at most 256 KiB) and its body */
	if (mp != 2 && len > spool_queue_config(rq->q)->max_size + (put ? 262144 : 0)) {
		set_answer(rq, 413, "%lld bytes: over the size limit of queue %s (max-size %lld bytes)\n",
		           len, queue, (long long)spool_queue_config(rq->q)->max_size);
		return send_answer(rq);
	}
	if (put && mp != 2) {
		char held[128];
		wanted_digest((rq->conn = conn, rq));
		if (spool_received(rq->q, id, held, sizeof held)) {
			if (rq->want[0] && held[0] && strcmp(rq->want, held) != 0)
				set_answer(rq, 409, "%s is held already with another body (%s)\n", id, held);
			else
				set_answer(rq, 200, "%s is held already\n", id);
			return send_answer(rq);
		}
	}
	if (spool_queue_admit(rq->q, 1, &e) != 0) {
		answer_err(rq, &e);
		return send_answer(rq);
	}
	rq->put = put;
	if (mp == 2) {
		const char *from = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Mq-Relay");
		if (from && relay_name_ok(from))
			snprintf(rq->from, sizeof rq->from, "%s", from);
		rq->batch = true;
		if (!(rq->md = EVP_MD_CTX_new()))
			return MHD_NO;
	} else if (put) {
		const char *from = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Mq-Relay");
		if (from && !relay_name_ok(from))
			from = NULL; /* not a relay name: the file's own Hop lines still count */
		if (!(rq->im = spool_import_new(rq->q, id, rx->r->name, from, &e))) {
			answer_err(rq, &e);
			return send_answer(rq);
		}
		if (!(rq->md = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(rq->md, EVP_sha256(), NULL))
			return MHD_NO;
	} else {
		const char *split = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "split");
		if (split && strcmp(split, "lines") != 0) {
			set_answer(rq, 400, "split: only 'lines', not '%s'\n", spool_printable(split));
			return send_answer(rq);
		}
		rq->split = split != NULL;
		if (!(rq->b = spool_batch_new(rq->q, NULL, &e)) ||
		    (!rq->split && spool_batch_begin(rq->b, &e) != 0)) {
			answer_err(rq, &e);
			return send_answer(rq);
		}
	}
	rq->state = REQ_BODY;
	return MHD_YES; /* libmicrohttpd sends 100 Continue if it was asked for */
}

/* ---- POST /v1/queues/Q/batch ---- */

static void
item_answer(struct item *it, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
item_answer(struct item *it, int status, const char *fmt, ...)
{
	va_list ap;
	free(it->text);
	va_start(ap, fmt);
	if (vasprintf(&it->text, fmt, ap) < 0)
		it->text = NULL;
	va_end(ap);
	for (char *c = it->text; c && *c; c++) /* one line each */
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	it->status = status;
}

static void
item_err(struct req *rq, struct item *it, const struct spool_err *e)
{
	int retry, status = err_status(e, &retry);
	item_answer(it, status, "%s", e->msg);
	if (retry)
		rq->retry_after = retry;
	spool_import_free(it->im);
	it->im = NULL;
}

/* The answer of a batch whose frames all have theirs: a line each. */
static void
batch_text(struct req *rq)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *o = open_memstream(&buf, &len);
	for (size_t i = 0; o && i < rq->nitems; i++)
		fprintf(o, "%d %s %s\n", rq->items[i].status, rq->items[i].id,
		        rq->items[i].text ? rq->items[i].text : "");
	if (!o || fclose(o) != 0) {
		free(buf);
		set_answer(rq, 500, "out of memory\n");
		return;
	}
	free(rq->body);
	rq->body = buf;
	rq->status = 200;
	rq->type = "text/plain; charset=utf-8";
}

static void
frame_end(struct req *rq)
{
	struct item *it = &rq->items[rq->nitems - 1];
	struct spool_err e = {0};
	char got[128];
	rq->in_frame = false;
	rq->headlen = 0;
	if (rq->skip)
		return;
	digest_of(rq, got, sizeof got);
	if (it->want[0] && strcmp(it->want, got) != 0) {
		item_answer(it, 400, "digest mismatch: the frame says %s, the file is %s", it->want, got);
		spool_import_free(it->im);
		it->im = NULL;
	} else if (spool_import_end(it->im, got, &e) != 0) {
		item_err(rq, it, &e);
	} else {
		rq->npend++;
	}
}

/* A frame's head line is in rq->head: what a PUT's headers decide. */
static void
frame_begin(struct req *rq)
{
	struct receiver *rx = rq->s->rx;
	struct spool_err e = {0};
	char id[40], held[128];
	long long size;
	if (rq->nitems == BATCH_MAX) { /* memory and open files: bounded per request */
		set_answer(rq, 413, "over %d frames in one batch\n", BATCH_MAX);
		rq->state = REQ_DISCARD;
		return;
	}
	if (rq->nitems == rq->capitems) {
		size_t cap = rq->capitems ? rq->capitems * 2 : 64;
		struct item *v = realloc(rq->items, cap * sizeof *v);
		if (!v) {
			set_answer(rq, 500, "out of memory\n");
			rq->state = REQ_DISCARD;
			return;
		}
		rq->items = v, rq->capitems = cap;
	}
	struct item *it = &rq->items[rq->nitems++];
	memset(it, 0, sizeof *it);
	rq->head[rq->headlen] = '\0';
	if (batch_head(rq->head, rq->headlen, id, sizeof id, &size, it->want, sizeof it->want) != 0) {
		set_answer(rq, 400, "batch frame %zu: not 'ID SIZE [sha-256=:B64:]': '%s'\n", rq->nitems,
		           spool_printable(rq->head));
		rq->state = REQ_DISCARD;
		return;
	}
	snprintf(it->id, sizeof it->id, "%s", spool_printable(id));
	const struct spool_config *cfg = spool_queue_config(rq->q);
	rq->in_frame = true;
	rq->left = size;
	rq->skip = true;
	if (!spool_id_ok(id)) {
		item_answer(it, 400, "bad message id");
	} else if (size > cfg->max_size + 262144) {
		item_answer(it, 413, "%lld bytes: over the size limit of queue %s (max-size %lld bytes)",
		            size, spool_queue_name(rq->q), (long long)cfg->max_size);
	} else if (spool_received(rq->q, id, held, sizeof held)) {
		if (it->want[0] && held[0] && strcmp(it->want, held) != 0)
			item_answer(it, 409, "held already with another body (%s)", held);
		else
			item_answer(it, 200, "held already");
	} else if (!(it->im = spool_import_new(rq->q, id, rx->r->name, rq->from, &e))) {
		item_err(rq, it, &e);
	} else if (!EVP_DigestInit_ex(rq->md, EVP_sha256(), NULL)) {
		spool_fail(&e, EX_OSERR, "out of memory");
		item_err(rq, it, &e);
	} else {
		rq->skip = false;
	}
	if (rq->left == 0)
		frame_end(rq);
}

static void
batch_body(struct req *rq, const char *p, size_t n)
{
	while (n && rq->state == REQ_BODY) {
		if (!rq->in_frame) {
			const char *nl = memchr(p, '\n', n);
			size_t k = nl ? (size_t)(nl - p) : n;
			if (rq->headlen + k >= sizeof rq->head) {
				set_answer(rq, 400, "batch frame %zu: a head line over %zu bytes\n", rq->nitems + 1,
				           sizeof rq->head - 1);
				rq->state = REQ_DISCARD;
				return;
			}
			memcpy(rq->head + rq->headlen, p, k);
			rq->headlen += k;
			p += k, n -= k;
			if (nl) {
				p++, n--;
				frame_begin(rq);
			}
			continue;
		}
		struct item *it = &rq->items[rq->nitems - 1];
		size_t k = (long long)n < rq->left ? n : (size_t)rq->left;
		if (!rq->skip) {
			struct spool_err e = {0};
			EVP_DigestUpdate(rq->md, p, k);
			if (spool_import_write(it->im, p, k, &e) != 0) {
				item_err(rq, it, &e);
				rq->skip = true;
			}
		}
		p += k, n -= k;
		rq->left -= (long long)k;
		if (rq->left == 0)
			frame_end(rq);
	}
}

static enum MHD_Result
batch_done(struct req *rq)
{
	struct receiver *rx = rq->s->rx;
	if (rq->in_frame || rq->headlen) {
		set_answer(rq, 400, "the batch ends inside frame %zu\n", rq->nitems + !rq->in_frame);
		return send_answer(rq);
	}
	if (rq->nitems == 0) {
		set_answer(rq, 400, "no frames in the batch\n");
		return send_answer(rq);
	}
	if (!rq->npend) {
		batch_text(rq);
		return send_answer(rq);
	}
	rq->state = REQ_PENDING;
	rq->next = rx->pending;
	rx->pending = rq;
	rx->npending += rq->npend;
	MHD_suspend_connection(rq->conn);
	loop_timer_earlier(rx->r->loop, &rx->commit, 1);
	return MHD_YES;
}

/* POST ?split=lines: each line (with its newline) is a message. */
static int
post_lines(struct req *rq, const char *p, size_t n, struct spool_err *e)
{
	while (n) {
		if (!rq->line_open) {
			if (spool_batch_begin(rq->b, e) != 0)
				return -1;
			rq->line_open = true;
		}
		const char *nl = memchr(p, '\n', n);
		size_t k = nl ? (size_t)(nl - p) + 1 : n;
		if (spool_batch_write(rq->b, p, k, e) != 0)
			return -1;
		if (nl) {
			if (spool_batch_end(rq->b, e) != 0)
				return -1;
			rq->line_open = false;
		}
		p += k, n -= k;
	}
	return 0;
}

static void
body(struct req *rq, const char *p, size_t n)
{
	struct spool_err e = {0};
	int rc;
	if (rq->batch) {
		batch_body(rq, p, n);
		return;
	}
	if (rq->put) {
		EVP_DigestUpdate(rq->md, p, n);
		rc = spool_import_write(rq->im, p, n, &e);
	} else if (rq->split) {
		rc = post_lines(rq, p, n, &e);
	} else {
		rc = spool_batch_write(rq->b, p, n, &e);
	}
	if (rc != 0) {
		/* answered once the client has sent the rest, which is dropped */
		answer_err(rq, &e);
		rq->state = REQ_DISCARD;
	}
}

/* The whole body is here: into the group commit (PUT), or committed now
 * with its own sync (POST: one request's messages, one commit). */
static enum MHD_Result
body_done(struct req *rq)
{
	struct spool_err e = {0};
	struct receiver *rx = rq->s->rx;
	if (rq->batch)
		return batch_done(rq);
	if (rq->put) {
		char got[128];
		digest_of(rq, got, sizeof got);
		if (rq->want[0] && strcmp(rq->want, got) != 0) {
			set_answer(rq, 400, "digest mismatch: Content-Digest says %s, the body is %s\n",
			           rq->want, got);
			return send_answer(rq);
		}
		if (spool_import_end(rq->im, got, &e) != 0) {
			answer_err(rq, &e);
			return send_answer(rq);
		}
		rq->state = REQ_PENDING;
		rq->next = rx->pending;
		rx->pending = rq;
		rx->npending++;
		MHD_suspend_connection(rq->conn);
		/* the commit runs once this batch of events is handled: what else
		 * completes in the batch shares its sync */
		loop_timer_earlier(rx->r->loop, &rx->commit, 1);
		return MHD_YES;
	}
	if ((rq->split && rq->line_open) || !rq->split) {
		if (spool_batch_end(rq->b, &e) != 0) {
			answer_err(rq, &e);
			return send_answer(rq);
		}
	}
	size_t n = spool_batch_pending(rq->b);
	if (n == 0) {
		set_answer(rq, 400, "no lines in the body\n");
		return send_answer(rq);
	}
	if (spool_batch_commit(rq->b, NULL, &e) < 0) {
		answer_err(rq, &e);
		return send_answer(rq);
	}
	json_t *ids = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(ids, json_string(spool_batch_id(rq->b, i)));
	rx->r->n.received += (long long)n;
	snprintf(rq->location, sizeof rq->location, "/v1/queues/%s/messages/%s",
	         spool_queue_name(rq->q), spool_batch_id(rq->b, 0));
	json_t *j = rq->split ? json_pack("{s:o, s:I}", "ids", ids, "count", (json_int_t)n) :
	                        json_pack("{s:s, s:o}", "id", spool_batch_id(rq->b, 0), "ids", ids);
	return answer_json(rq, 201, j, 0);
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *s = cls;
	struct req *rq = *con_cls;
	(void)version;
	if (!rq)
		return begin(s, conn, url, method, con_cls);
	switch (rq->state) {
	case REQ_BODY:
		if (*upload_data_size) {
			body(rq, upload_data, *upload_data_size);
			*upload_data_size = 0;
			return MHD_YES;
		}
		return body_done(rq);
	case REQ_DISCARD:
		if (*upload_data_size) {
			*upload_data_size = 0;
			return MHD_YES;
		}
		return send_answer(rq);
	case REQ_PENDING: /* resumed after the commit */
		return send_answer(rq);
	case REQ_ANSWER:
		*upload_data_size = 0;
		return MHD_YES;
	}
	return MHD_NO;
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode why)
{
	struct req *rq = *con_cls;
	(void)cls, (void)conn, (void)why;
	if (!rq)
		return;
	spool_import_free(rq->im);
	for (size_t i = 0; i < rq->nitems; i++) {
		spool_import_free(rq->items[i].im);
		free(rq->items[i].text);
	}
	free(rq->items);
	spool_batch_free(rq->b);
	if (rq->md)
		EVP_MD_CTX_free(rq->md);
	free(rq->body);
	free(rq);
	*con_cls = NULL;
}

/* ---- the loop's side ---- */

static void
server_run(struct server *s)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	bool timed;
	/* A resumed connection is taken up by one MHD_run and answered by the
	 * next, with no new event on its socket in between: run while the
	 * server says it has work now (bounded: the loop comes back anyway). */
	for (int i = 0; i < 4; i++) {
		MHD_run(s->d);
		timed = MHD_get_timeout(s->d, &ms) == MHD_YES;
		if (!timed || ms > 0)
			break;
	}
	if (timed)
		loop_timer_set(s->rx->r->loop, &s->timer, spool_now() + (int64_t)(ms < 1 ? 1 : ms));
	else
		loop_timer_set(s->rx->r->loop, &s->timer, 0);
}

static void
on_io(void *arg, uint32_t events)
{
	(void)events;
	server_run(arg);
}

static void
on_timer(void *arg)
{
	server_run(arg);
}

static void
on_commit(void *arg)
{
	receive_pass(arg);
}

/* The commit of the requests on rx->syncing (the imports in rx->sv) is
 * done: answer each, and resume its connection. */
static void
answer_commit(struct receiver *rx)
{
	struct relayd *r = rx->r;
	spool_import **v = rx->sv;
	if (v)
		spool_import_publish(v, rx->sn);
	for (struct req *rq = rx->syncing, *next; rq; rq = next) {
		next = rq->next;
		struct spool_err e = {0};
		if (rq->batch) {
			for (size_t i = 0; i < rq->nitems; i++) {
				struct item *it = &rq->items[i];
				if (!it->im || it->status)
					continue;
				int res = v ? spool_import_result(it->im, &e) : -1;
				if (!v)
					spool_fail(&e, EX_OSERR, "out of memory");
				if (res > 0) {
					r->n.received++;
					item_answer(it, 201, "stored");
				} else if (res == 0) {
					item_answer(it, 200, "held already");
				} else {
					logmsg(LOG_ERR, "%s: receive %s: %s", spool_queue_name(rq->q), it->id, e.msg);
					item_err(rq, it, &e);
				}
			}
			batch_text(rq);
			rq->next = NULL;
			MHD_resume_connection(rq->conn);
			continue;
		}
		int res = v ? spool_import_result(rq->im, &e) : -1;
		if (!v)
			spool_fail(&e, EX_OSERR, "out of memory");
		if (res > 0) {
			r->n.received++;
			set_answer(rq, 201, "stored %s\n", spool_import_id(rq->im));
			snprintf(rq->location, sizeof rq->location, "/v1/queues/%s/messages/%s",
			         spool_queue_name(rq->q), spool_import_id(rq->im));
		} else if (res == 0) {
			set_answer(rq, 200, "%s is held already\n", spool_import_id(rq->im));
		} else {
			logmsg(LOG_ERR, "%s: receive %s: %s", spool_queue_name(rq->q),
			       spool_import_id(rq->im), e.msg);
			answer_err(rq, &e);
		}
		rq->next = NULL;
		MHD_resume_connection(rq->conn);
	}
	free(v);
	rx->sv = NULL, rx->sn = 0;
	rx->syncing = NULL;
}

static void
sync_imports(void *arg)
{
	struct receiver *rx = arg;
	spool_import_sync(rx->sv, rx->sn);
}

/* Start the commit of what waits on rx->pending: its data sync in the
 * sync thread when there is one (the loop goes on taking requests; the
 * next group waits for this one's end), else here and now. */
static void
start_commit(struct receiver *rx)
{
	rx->syncing = rx->pending;
	rx->sn = 0;
	if ((rx->sv = calloc(rx->npending, sizeof *rx->sv))) /* NOLINT(bugprone-sizeof-expression): of pointers */
		for (struct req *rq = rx->pending; rq; rq = rq->next) {
			if (!rq->batch) {
				rx->sv[rx->sn++] = rq->im;
				continue;
			}
			for (size_t i = rq->nitems; i-- > 0;) /* reversed below, as the list is */
				if (rq->items[i].im && !rq->items[i].status)
					rx->sv[rx->sn++] = rq->items[i].im;
		}
	rx->pending = NULL;
	rx->npending = 0;
	/* the list is newest first: commit in arrival order */
	for (size_t i = 0; i < rx->sn / 2; i++) {
		spool_import *t = rx->sv[i];
		rx->sv[i] = rx->sv[rx->sn - 1 - i], rx->sv[rx->sn - 1 - i] = t;
	}
	if (rx->sync && rx->sv) {
		offload_run(rx->sync, sync_imports, rx);
		return;
	}
	if (rx->sv)
		spool_import_sync(rx->sv, rx->sn);
	answer_commit(rx);
}

static void
on_synced(void *arg)
{
	struct receiver *rx = arg;
	answer_commit(rx);
	if (rx->pending)
		start_commit(rx);
	for (struct server *s = rx->servers; s; s = s->next)
		server_run(s);
}

void
receive_pass(struct relayd *r)
{
	struct receiver *rx = r->rx;
	if (!rx)
		return;
	rx->pass++;
	if (rx->pending && !(rx->sync && offload_busy(rx->sync)))
		start_commit(rx);
	for (struct server *s = rx->servers; s; s = s->next)
		server_run(s);
}

static void
server_free(struct relayd *r, struct server *s)
{
	if (s->d) {
		loop_io_del(r->loop, s->io);
		loop_timer_set(r->loop, &s->timer, 0);
		MHD_stop_daemon(s->d);
	}
	if (s->ca)
		gnutls_certificate_free_credentials(s->ca);
	tokens_free(s->tokens, s->ntokens);
	free(s->mem_cert);
	free(s->mem_key);
	free(s->mem_ca);
	free(s->addr);
	free(s);
}

static int
server_start(struct receiver *rx, const struct listener *l, struct spool_err *e)
{
	struct relayd *r = rx->r;
	struct server *s = calloc(1, sizeof *s);
	if (!s || !(s->addr = strdup(l->addr)))
		return free(s), spool_fail(e, EX_OSERR, "out of memory");
	s->rx = rx;
	loop_timer_init(&s->timer, on_timer, s);
	s->need_token = l->ntoken_files > 0;
	if (tokens_read(l->token_files, &s->tokens, &s->ntokens, e) != 0)
		goto fail;
	struct sockaddr_storage ss;
	bool v6;
	if (conf_sockaddr(l->addr, &ss, &v6) != 0) {
		spool_fail(e, EX_CONFIG, "listen %s: bad address", l->addr);
		goto fail;
	}
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	struct MHD_OptionItem opts[16];
	int k = 0;
	/* the logger first: libmicrohttpd logs about the options after it */
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)relayd_mhd_log, (void *)"http"};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)l->max_connections, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)l->max_per_address, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
	                                    (intptr_t)((l->request_timeout + 999) / 1000), NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL};
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)no_unescape, NULL};
	if (l->tls_cert) {
		flags |= MHD_USE_TLS;
		if (!(s->mem_cert = conf_slurp(l->tls_cert, e)) || !(s->mem_key = conf_slurp(l->tls_key, e)))
			goto fail;
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->mem_cert};
		opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->mem_key};
		if (l->tls_client_ca) {
			if (!(s->mem_ca = conf_slurp(l->tls_client_ca, e)))
				goto fail;
			opts[k++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, s->mem_ca};
			s->client_certs = true;
		}
	}
	opts[k++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_ARRAY, opts,
	                        MHD_OPTION_END);
	if (!s->d) {
		spool_fail(e, EX_CONFIG, "listen %s: cannot start the HTTP server (address in use, or a bad "
		           "certificate or key)", l->addr);
		goto fail;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!di || !(s->io = loop_io_add(r->loop, di->epoll_fd, EPOLLIN, on_io, s))) {
		spool_fail(e, EX_OSERR, "listen %s: cannot watch the server: %s", l->addr, strerror(errno));
		goto fail;
	}
	if (!s->need_token) {
		bool loopback = strncmp(l->addr, "127.", 4) == 0 || strncmp(l->addr, "[::1]", 5) == 0;
		logmsg(loopback ? LOG_INFO : LOG_WARNING,
		       "listen %s: no token-file: anyone who can connect may write any queue", l->addr);
	}
	s->next = rx->servers;
	rx->servers = s;
	logmsg(LOG_INFO, "listening on %s%s%s", l->addr, l->tls_cert ? " (TLS" : "",
	       l->tls_cert ? (s->client_certs ? ", client certificates)" : ")") : "");
	return 0;
fail:
	server_free(r, s);
	return -1;
}

int
receive_start(struct relayd *r, struct spool_err *e)
{
	if (!r->conf.listeners)
		return 0;
	if (!(r->rx = calloc(1, sizeof *r->rx)))
		return spool_fail(e, EX_OSERR, "out of memory");
	r->rx->r = r;
	loop_timer_init(&r->rx->commit, on_commit, r);
	if (!(r->rx->sync = offload_new(r->loop, on_synced, r->rx)))
		logmsg(LOG_WARNING, "no sync thread (%s): commits wait in the loop", strerror(errno));
	for (const struct listener *l = r->conf.listeners; l; l = l->next)
		if (server_start(r->rx, l, e) != 0)
			return -1;
	return 0;
}

/* SIGHUP: new tokens for the listeners that stay; a listener added, removed
 * or moved needs a restart (said, not done). */
int
receive_reload(struct relayd *r, const struct conf *nc, struct spool_err *e)
{
	struct receiver *rx = r->rx;
	size_t nl = 0;
	for (const struct listener *l = nc->listeners; l; l = l->next)
		nl++;
	struct {
		struct server *s;
		struct token *t;
		size_t n;
	} *v = calloc(nl + 1, sizeof *v);
	if (!v)
		return spool_fail(e, EX_OSERR, "out of memory");
	/* read every token file first: a bad one changes nothing anywhere */
	size_t k = 0;
	int rc = 0;
	for (const struct listener *l = nc->listeners; l && rc == 0; l = l->next, k++) {
		struct server *s = rx ? rx->servers : NULL;
		while (s && strcmp(s->addr, l->addr) != 0)
			s = s->next;
		if (!s) {
			logmsg(LOG_WARNING, "reload: listen %s is new: it needs a restart", l->addr);
			continue;
		}
		v[k].s = s;
		rc = tokens_read(l->token_files, &v[k].t, &v[k].n, e);
	}
	for (size_t i = 0; i < nl; i++) {
		if (!v[i].s)
			continue;
		if (rc != 0) {
			tokens_free(v[i].t, v[i].n);
			continue;
		}
		tokens_free(v[i].s->tokens, v[i].s->ntokens);
		v[i].s->tokens = v[i].t, v[i].s->ntokens = v[i].n;
		v[i].s->need_token = false;
	}
	if (rc == 0) {
		k = 0;
		for (const struct listener *l = nc->listeners; l; l = l->next, k++)
			if (v[k].s)
				v[k].s->need_token = l->ntoken_files > 0;
	}
	free(v);
	if (rc != 0)
		return -1;
	/* QUEUE/config may have changed */
	for (struct cached_queue *c = rx ? rx->queues : NULL; c; c = c->next)
		if (spool_queue_reload(c->q, e) != 0)
			logmsg(LOG_ERR, "reload: %s", e->msg);
	return 0;
}

/* mq-relayd -n: what start-up would read of the listeners (tokens, TLS files). */
int
receive_check(const struct conf *c, struct spool_err *e)
{
	for (const struct listener *l = c->listeners; l; l = l->next) {
		struct token *t;
		size_t n;
		if (tokens_read(l->token_files, &t, &n, e) != 0)
			return -1;
		tokens_free(t, n);
		const char *files[] = {l->tls_cert, l->tls_key, l->tls_client_ca};
		for (int i = 0; i < 3; i++) {
			char *text = files[i] ? conf_slurp(files[i], e) : NULL;
			if (files[i] && !text)
				return -1;
			free(text);
		}
	}
	return 0;
}

void
receive_stop(struct relayd *r)
{
	struct receiver *rx = r->rx;
	if (!rx)
		return;
	if (rx->sync) {
		offload_wait(rx->sync);
		if (rx->syncing || rx->sv)
			answer_commit(rx);
		offload_free(rx->sync);
		rx->sync = NULL;
	}
	for (struct server *s = rx->servers, *n; s; s = n) {
		n = s->next;
		server_free(r, s);
	}
	for (struct cached_queue *lists[2] = {rx->queues, rx->stale}, **l = lists; l < lists + 2; l++)
		while (*l) {
			struct cached_queue *c = *l;
			*l = c->next;
			spool_queue_close(c->q);
			free(c);
		}
	loop_timer_set(r->loop, &rx->commit, 0);
	free(rx);
	r->rx = NULL;
}

long long
receive_answers(const struct relayd *r, int cls)
{
	return r->rx && cls >= 1 && cls <= 5 ? r->rx->by_status[cls] : 0;
}
