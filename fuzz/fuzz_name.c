/* SPDX-License-Identifier: MIT */
/*
 * fuzz_name.c: name_parse(), which reads the file names of new/, cur/,
 * dead/ and done/, where anyone may put a file.  The input is one name in a
 * buffer of exactly its size, as list.c keeps the names readdir gives it.
 *
 * A name it accepts must be canonical: formatted again from its fields it
 * is the same bytes (the claim, ack and nack paths rebuild names so).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const struct spool_name *a, const struct spool_name *b)
{
	return a->t == b->t && strcmp(a->id, b->id) == 0 && a->attempts == b->attempts &&
	       a->exp == b->exp;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_name n, n2;
	char buf[NAME_LEN];
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (name_parse(s, &n) == 0) {
		/* what the claim, nack and bury paths do with a parsed name */
		name_format(buf, sizeof buf, &n);
		if (name_parse(buf, &n2) != 0 || !same(&n, &n2))
			abort(); /* formatted name does not parse back */
		if (strcmp(buf, s) != 0)
			abort(); /* accepted name is not canonical */
		(void)ulid_time(n.id);
	}
	free(s);
	return 0;
}
