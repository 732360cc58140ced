/* SPDX-License-Identifier: MIT */
/*
 * fuzz_parse.c: the duration, size and time syntax (util.c) that options
 * and config files share: spool_parse_duration, spool_parse_size and
 * spool_parse_time, each on the same NUL-terminated input.  Each returns a
 * value >= 0 or -1, durations and times at most SPOOL_TIME_MAX (what a name
 * holds); anything else, and any UB on the way, is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spool_priv.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* local times go through mktime: a zone with DST, and no file to
	 * read per call (a POSIX TZ string is parsed once) */
	if (!getenv("TZ"))
		setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int64_t d = spool_parse_duration(s), t = spool_parse_time(s);
	if (d < -1 || d > SPOOL_TIME_MAX || spool_parse_size(s) < -1 || t < -1 ||
	    t > SPOOL_TIME_MAX)
		abort();
	free(s);
	return 0;
}
