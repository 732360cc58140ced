/* SPDX-License-Identifier: MIT */
/*
 * fuzz_request.c: what mq-relayd reads of an HTTP exchange (relayd/parse.c):
 * the receiver's request path (message_path, then the name checks begin()
 * applies), its Authorization, Content-Digest and Mq-Relay headers, and the
 * forwarder's Retry-After header line of a peer's answer, and the two lines
 * of a batch (PROTOCOL.md 4a): a frame's head line, which the receiver
 * reads, and an answer's status line, which the forwarder reads.  The input
 * is newline-separated: the path, the three request header values, and the
 * rest, which is the line, handed over in a buffer of exactly its size and
 * not NUL-terminated, as libcurl hands it.
 *
 * Checks, besides the sanitizers: a path that parses is rebuilt from its
 * parts byte for byte; parts that pass spool_queue_name_ok and spool_id_ok
 * hold no '/' or '%' and do not start with '.', so percent-encoding (never
 * decoded: "%2F" stays three bytes) or a dot segment never reaches a file
 * name; a bearer token
 * and a digest are pieces of their header of the promised shape; an
 * accepted Hop name has the shape conf.c allows; a Retry-After is -1 for
 * another header, else from 0 to 86399; a head line or status line taken
 * apart gives words of the line, blank-free and in their buffers, a size
 * of digits, a status of three.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "spool_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next newline-separated field of [*p, end) as a new string. */
static char *
field(const char **p, const char *end)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));
	const char *stop = nl ? nl : end;
	char *s = strndup(*p, (size_t)(stop - *p));
	if (!s)
		abort();
	*p = nl ? nl + 1 : end;
	return s;
}

/* One path component of its own, never "." or "..": "a..b" is a name */
static bool
safe_part(const char *s)
{
	return *s && *s != '.' && !strchr(s, '/') && !strchr(s, '%');
}

static void
check_path(const char *url)
{
	char queue[80], id[40], again[200];
	int mp = message_path(url, queue, sizeof queue, id, sizeof id);
	if (mp < -1 || mp > 2)
		abort();
	if (mp == 2) { /* exactly /v1/queues/Q/batch */
		snprintf(again, sizeof again, "/v1/queues/%s/batch", queue);
		if (id[0] || strcmp(again, url) != 0 || (spool_queue_name_ok(queue) && !safe_part(queue)))
			abort();
		return;
	}
	if (mp != 1)
		return;
	if (strlen(queue) >= sizeof queue || strlen(id) >= sizeof id)
		abort();
	snprintf(again, sizeof again, "/v1/queues/%s/messages%s%s", queue, id[0] ? "/" : "", id);
	size_t n = strlen(again);
	/* "/messages/" with no id is the same as "/messages" */
	if (strcmp(again, url) != 0 && !(id[0] == '\0' && strncmp(url, again, n) == 0 &&
	                                 strcmp(url + n, "/") == 0))
		abort();
	if (spool_queue_name_ok(queue) && !safe_part(queue))
		abort();
	if (id[0] && spool_id_ok(id) && !safe_part(id))
		abort();
}

static void
check_headers(const char *auth, const char *digest, const char *from)
{
	const char *tok = bearer_token(auth);
	if (tok && (tok < auth + 7 || tok > auth + strlen(auth) || *tok == ' ' ||
	            strncasecmp(auth, "Bearer ", 7) != 0))
		abort();
	char want[128];
	content_digest(digest, want, sizeof want);
	size_t n = strlen(want);
	if (n && (n >= sizeof want || strncmp(want, "sha-256=:", 9) != 0 || want[n - 1] != ':' ||
	          n < 10 || memchr(want + 9, ':', n - 10) || !strstr(digest, want)))
		abort();
	if (relay_name_ok(from)) {
		size_t k = strlen(from);
		if (k < 1 || k > 200 || strpbrk(from, " ,\x7f"))
			abort();
		for (const char *p = from; *p; p++)
			if ((unsigned char)*p < ' ')
				abort();
	}
}

/* Whether word w (NUL-terminated, its own buffer) is a blank-free piece of
 * [line, line + n). */
static bool
word_of(const char *w, const char *line, size_t n)
{
	size_t k = strlen(w);
	if (k == 0 || k > n || memchr(w, ' ', k))
		return false;
	for (size_t i = 0; i + k <= n; i++)
		if (memcmp(line + i, w, k) == 0)
			return true;
	return false;
}

static void
check_batch_lines(const char *line, size_t n)
{
	char id[40], dig[128];
	long long size = -1;
	if (batch_head(line, n, id, sizeof id, &size, dig, sizeof dig) == 0) {
		if (!word_of(id, line, n) || size < 0 || (dig[0] && (!word_of(dig, line, n) ||
		                                                     strncmp(dig, "sha-256=:", 9) != 0)))
			abort();
	}
	const char *text = NULL;
	size_t tlen = 0;
	int st = batch_result(line, n, id, sizeof id, &text, &tlen);
	if (st >= 0 && (st > 999 || !word_of(id, line, n) || text < line || text + tlen != line + n))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *url = field(&p, end), *auth = field(&p, end), *digest = field(&p, end),
	     *from = field(&p, end);
	check_path(url);
	check_headers(auth, digest, from);
	/* the rest, at a size of its own: a read past it is an ASan finding */
	size_t n = (size_t)(end - p);
	char *line = malloc(n ? n : 1);
	if (!line)
		abort();
	memcpy(line, p, n);
	long s = retry_after(line, n);
	if (s < -1 || s >= 86400 ||
	    (s == -1) != (n <= 12 || strncasecmp(line, "Retry-After:", 12) != 0))
		abort();
	check_batch_lines(line, n);
	free(line);
	free(url), free(auth), free(digest), free(from);
	return 0;
}
