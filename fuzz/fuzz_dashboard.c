/* SPDX-License-Identifier: MIT */
/*
 * fuzz_dashboard.c: what the dashboard (relayd/web.c) reads from outside,
 * in relayd/parse.c: its password file (users_parse), the Authorization of
 * a login (basic_auth) and the form of an action (form_value), each on the
 * same input: the whole of it as the file and as the form, its first line
 * as the header.
 *
 * Checks, besides the sanitizers and the leak checker: a refused file is
 * 78 (71 out of memory); an accepted one has at least one user, each name
 * 1 to 64 bytes without a colon, blank or control character, each hash in
 * crypt(3)'s form ($...$ or 13 characters) without a colon; a login that
 * parses has a user without a colon, both parts within their buffers; a
 * form value is within its buffer, its length is its strlen (no NUL got
 * through).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "spool_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	struct user *v = NULL;
	size_t n = 0;
	FILE *fp = size ? fmemopen((void *)data, size, "r") : fopen("/dev/null", "r");
	if (!fp)
		abort();
	int rc = users_parse(fp, "fuzz", &v, &n, &e);
	fclose(fp);
	if (rc != 0) {
		if (e.code != EX_CONFIG && e.code != EX_OSERR)
			abort();
	} else {
		if (n == 0 || n > MAX_USERS)
			abort();
		for (size_t i = 0; i < n; i++) {
			size_t ul = strlen(v[i].name);
			if (ul < 1 || ul > 64 || strchr(v[i].name, ':') || strchr(v[i].hash, ':'))
				abort();
			for (const char *p = v[i].name; *p; p++)
				if ((unsigned char)*p <= ' ' || *p == 0x7f)
					abort();
			if (v[i].hash[0] != '$' && strlen(v[i].hash) != 13)
				abort();
		}
	}
	users_free(v, n);

	char *line = strndup((const char *)data, size);
	if (!line)
		abort();
	line[strcspn(line, "\n")] = '\0';
	char user[65], pass[512];
	memset(user, 'x', sizeof user);
	if (basic_auth(line, user, sizeof user, pass, sizeof pass)) {
		if (strchr(user, ':') || strlen(user) >= sizeof user || strlen(pass) >= sizeof pass)
			abort();
	}
	free(line);

	char out[64];
	for (size_t nth = 0; nth < 4; nth++) {
		long k = form_value((const char *)data, size, "id", nth, out, sizeof out);
		if (k >= 0 && ((size_t)k >= sizeof out || strlen(out) != (size_t)k))
			abort();
	}
	return 0;
}
