/* SPDX-License-Identifier: MIT */
/*
 * config.c: a queue's optional `config` file, `key = value` lines with '#'
 * comments.  Unknown keys are warned about (through spool_warn_hook) so that a
 * newer config still works with an older tool; bad values are an error.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "spool_priv.h"

void (*spool_warn_hook)(const char *msg);

static const struct spool_config defaults = {
	.lease = 5 * 60 * 1000,
	.max_attempts = 5,
	.backoff_first = 10 * 1000,
	.backoff_cap = 60 * 60 * 1000,
	.retention = 0,
	.keep_acked = 0,
	.max_length = 0,
	.min_free = 0,
	.dedup_window = 24 * 60 * 60 * 1000,
	.max_size = 64 << 20,
	.tmp_grace = 60 * 60 * 1000,
	.dead_retention = 0,
};

enum kind { DUR, SIZE, COUNT, BACKOFF };
static const struct {
	const char *key;
	enum kind kind;
	size_t off;
} keys[] = {
	{"backoff", BACKOFF, offsetof(struct spool_config, backoff_first)},
	{"dead-retention", DUR, offsetof(struct spool_config, dead_retention)},
	{"dedup-window", DUR, offsetof(struct spool_config, dedup_window)},
	{"keep-acked", DUR, offsetof(struct spool_config, keep_acked)},
	{"lease", DUR, offsetof(struct spool_config, lease)},
	{"max-attempts", COUNT, offsetof(struct spool_config, max_attempts)},
	{"max-length", COUNT, offsetof(struct spool_config, max_length)},
	{"max-size", SIZE, offsetof(struct spool_config, max_size)},
	{"min-free", SIZE, offsetof(struct spool_config, min_free)},
	{"retention", DUR, offsetof(struct spool_config, retention)},
	{"tmp-grace", DUR, offsetof(struct spool_config, tmp_grace)},
};

char *
spool_trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

static int
set_value(struct spool_config *c, int k, const char *v)
{
	char *p = (char *)c + keys[k].off;
	int64_t x = -1;
	switch (keys[k].kind) {
	case DUR:
		x = spool_parse_duration(v);
		break;
	case SIZE:
		x = spool_parse_size(v);
		break;
	case COUNT: {
		char *end;
		errno = 0;
		long long l = strtoll(v, &end, 10);
		x = errno || end == v || *end || l < 0 ? -1 : l;
		if (x >= 0 && keys[k].off == offsetof(struct spool_config, max_attempts)) {
			if (x > 1000000)
				return -1;
			*(long *)p = (long)x;
			return 0;
		}
		break;
	}
	case BACKOFF: { /* FIRST[..CAP] */
		char first[64];
		const char *dots = strstr(v, "..");
		size_t n = dots ? (size_t)(dots - v) : strlen(v);
		if (n >= sizeof first)
			return -1;
		memcpy(first, v, n);
		first[n] = '\0';
		int64_t f = spool_parse_duration(first);
		int64_t cap = dots ? spool_parse_duration(dots + 2) : f * 360;
		if (f < 0 || cap < 0 || cap < f)
			return -1;
		c->backoff_first = f;
		c->backoff_cap = cap;
		return 0;
	}
	}
	if (x < 0)
		return -1;
	/* a lease shorter than this would expire while it is being extended */
	if (keys[k].off == offsetof(struct spool_config, lease) && x < 100)
		return -1;
	*(int64_t *)p = x;
	return 0;
}

int
spool_queue_reload(spool_queue *q, struct spool_err *e)
{
	return config_load(q, e);
}

int
config_load(spool_queue *q, struct spool_err *e)
{
	/* into a copy: a file with an error leaves the settings as they were */
	struct spool_config cfg = defaults;
	/* a link is not followed: in a shared spool it could name a file of
	 * another user, whose lines would be quoted in our errors */
	int fd = spool_open_file(q->fd, "config", O_RDONLY, 0, NULL);
	if (fd < 0 && errno == SPOOL_ENOTREG)
		return spool_fail(e, EX_CONFIG, "%s/config: not a regular file (a link is not followed)",
		                  q->path);
	if (fd < 0)
		return errno == ENOENT ? (q->cfg = cfg, 0) :
		                         spool_fail_errno(e, errno, "read %s/config", q->path);
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return spool_fail_errno(e, errno, "read %s/config", q->path);
	}
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = 0;
	while (getline(&line, &cap, f) >= 0) {
		lineno++;
		char *s = spool_trim(line), *eq;
		if (!*s || *s == '#')
			continue;
		for (char *h = s; (h = strchr(h, '#')); h++) /* a comment after the value */
			if (h[-1] == ' ' || h[-1] == '\t') {
				*h = '\0';
				s = spool_trim(s);
				break;
			}
		if (!(eq = strchr(s, '='))) {
			rc = spool_fail(e, EX_CONFIG, "%s/config:%d: want 'key = value': '%s'", q->path,
			                lineno, s);
			break;
		}
		*eq = '\0';
		char *key = spool_trim(s), *val = spool_trim(eq + 1);
		size_t k;
		for (k = 0; k < sizeof keys / sizeof *keys; k++)
			if (strcmp(keys[k].key, key) == 0)
				break;
		if (k == sizeof keys / sizeof *keys) {
			if (spool_warn_hook) {
				char msg[600];
				snprintf(msg, sizeof msg, "%s/config:%d: unknown key '%.100s' ignored", q->path,
				         lineno, key);
				spool_warn_hook(msg);
			}
			continue;
		}
		if (set_value(&cfg, (int)k, val) != 0) {
			rc = spool_fail(e, EX_CONFIG, "%s/config:%d: bad value for %s: '%.100s'", q->path,
			                lineno, key, val);
			break;
		}
	}
	/* getline fails (ENOMEM) without setting the error flag: not at the end
	 * means the rest of the file was not read */
	if (rc == 0 && (ferror(f) || !feof(f)))
		rc = spool_fail_errno(e, errno ? errno : EIO, "read %s/config", q->path);
	free(line);
	fclose(f);
	if (rc == 0)
		q->cfg = cfg;
	return rc;
}

int
spool_config_set(struct spool_config *c, const char *key, const char *val)
{
	for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
		if (strcmp(keys[k].key, key) == 0)
			return set_value(c, (int)k, val) == 0 ? 0 : -1;
	return -2;
}

void
spool_queue_set_config(spool_queue *q, const struct spool_config *c)
{
	q->cfg = *c;
}
