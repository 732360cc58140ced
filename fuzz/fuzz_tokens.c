/* SPDX-License-Identifier: MIT */
/*
 * fuzz_tokens.c: the token files of mq-relayd (relayd/parse.c): a listen
 * block's, read by tokens_parse (TOKEN [QUEUE...] a line), and a forward's,
 * read by token_first (its first token), each on the same input.
 *
 * Checks, besides the sanitizers (and the leak checker: tokens_free must
 * free all a failed parse built): a refusal is 78, or 71 out of memory; an
 * accepted file has one token per line that is not empty or a comment, at
 * most MAX_TOKENS, each the sha-256 of the line's first word, with valid
 * queue names; the forward's token is that first word too, free of blanks
 * and control characters, and a file without one says so.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "spool_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *
stream(const uint8_t *data, size_t size)
{
	/* fmemopen reads exactly size bytes; /dev/null is the empty file */
	FILE *fp = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
	if (!fp)
		abort();
	return fp;
}

/* The first word of each line that is not empty or a comment, as a token
 * file means it (lines cut at '\n', a string ending at a NUL). */
static size_t
first_words(const uint8_t *data, size_t size, unsigned char (*hash)[32], size_t max)
{
	size_t n = 0;
	for (const uint8_t *p = data, *end = data + size; p < end;) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		char *line = strndup((const char *)p, len);
		if (!line)
			abort();
		p += len;
		char *s = spool_trim(line);
		if (*s && *s != '#') {
			if (n < max)
				token_hash(s, strcspn(s, " \t"), hash[n]);
			n++;
		}
		free(line);
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	struct token *v = NULL;
	size_t n = 0;
	FILE *fp = stream(data, size);
	int rc = tokens_parse(fp, "fuzz", &v, &n, &e);
	fclose(fp);
	static unsigned char want[MAX_TOKENS + 1][32];
	size_t lines = first_words(data, size, want, MAX_TOKENS + 1);
	if (rc != 0) {
		if (e.code != EX_CONFIG && e.code != EX_OSERR)
			abort();
	} else {
		if (n != lines || n > MAX_TOKENS)
			abort();
		for (size_t i = 0; i < n; i++) {
			if (memcmp(v[i].hash, want[i], 32) != 0)
				abort();
			for (char **q = v[i].queues; q && *q; q++)
				if (!spool_queue_name_ok(*q))
					abort();
		}
	}
	tokens_free(v, n);

	char *tok;
	fp = stream(data, size);
	const char *why = token_first(fp, &tok);
	fclose(fp);
	if (why) {
		if (tok || (lines == 0) != (strcmp(why, "holds no token") == 0))
			abort();
		return 0;
	}
	unsigned char h[32];
	token_hash(tok, strlen(tok), h);
	if (!*tok || lines == 0 || memcmp(h, want[0], 32) != 0)
		abort();
	for (const char *p = tok; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			abort();
	free(tok);
	return 0;
}
