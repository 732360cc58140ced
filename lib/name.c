/* SPDX-License-Identifier: MIT */
/*
 * name.c: the file names that carry a message's state (T.ID.A[.E]) and the
 * ULID ids inside them.  Nothing else in the library builds or splits a name.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "spool_priv.h"

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; /* Crockford */

static int
b32val(int c)
{
	const char *p = c ? strchr(b32, c) : NULL;
	return p ? (int)(p - b32) : -1;
}

int
ulid_ok(const char *s)
{
	for (int i = 0; i < ULID_LEN; i++)
		if (b32val((unsigned char)s[i]) < 0)
			return 0;
	return s[ULID_LEN] == '\0' && b32val((unsigned char)s[0]) < 8;
}

int64_t
ulid_time(const char *id)
{
	int64_t t = 0;
	for (int i = 0; i < 10; i++)
		t = t * 32 + b32val((unsigned char)id[i]);
	return t;
}

/*
 * 48 bits of milliseconds, then 80 random bits.  Within one process ids are
 * strictly increasing: in the same millisecond the random part is the last
 * one plus one, so a producer's messages keep their order in new/.
 */
void
ulid_new(char out[ULID_LEN + 1])
{
	static int64_t last_ms;
	static unsigned char last_rnd[10];
	int64_t ms = spool_now();
	unsigned char r[10];

	if (ms <= last_ms) {
		ms = last_ms;
		memcpy(r, last_rnd, sizeof r);
		for (int i = 9; i >= 0 && ++r[i] == 0; i--)
			;
	} else if (getrandom(r, sizeof r, 0) != sizeof r) {
		/* no entropy source: time and pid still make collisions unlikely */
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t x = (uint64_t)ts.tv_nsec * 2654435761u ^ (uint64_t)getpid() << 32;
		for (int i = 0; i < 10; i++, x = x * 6364136223846793005u + 1442695040888963407u)
			r[i] = (unsigned char)(x >> 56);
	}
	last_ms = ms;
	memcpy(last_rnd, r, sizeof r);

	for (int i = 9; i >= 0; i--, ms >>= 5)
		out[i] = b32[ms & 31];
	/* 80 bits = 16 characters of 5 bits */
	for (int i = 0; i < 16; i++) {
		int bit = i * 5, v = 0;
		for (int k = 0; k < 5; k++, bit++)
			v = v << 1 | (r[bit / 8] >> (7 - bit % 8) & 1);
		out[10 + i] = b32[v];
	}
	out[ULID_LEN] = '\0';
}

/* Decimal digits at s, exactly `exact` of them, or else 1 to `most` without
 * a leading zero (the one spelling name_format writes); NULL if not. */
static const char *
digits(const char *s, int64_t *v, int exact, int most)
{
	int64_t x = 0;
	int n = 0;
	for (; *s >= '0' && *s <= '9'; s++, n++) {
		if (n == (exact ? exact : most))
			return NULL;
		x = x * 10 + (*s - '0');
	}
	if (n == 0 || (exact && n != exact) || (!exact && n > 1 && s[-n] == '0'))
		return NULL;
	*v = x;
	return s;
}

/*
 * 0 if s is a message name, -1 if not (a stray file: left alone).  Only the
 * canonical spelling is a name, so that the name rebuilt from its fields (to
 * find a claim again, to ack it) is the file's own.
 */
int
name_parse(const char *s, struct spool_name *n)
{
	int64_t a;
	if (!(s = digits(s, &n->t, TIME_DIGITS, 0)) || *s++ != '.')
		return -1;
	if (strnlen(s, ULID_LEN) != ULID_LEN)
		return -1;
	memcpy(n->id, s, ULID_LEN);
	n->id[ULID_LEN] = '\0';
	if (!ulid_ok(n->id))
		return -1;
	s += ULID_LEN;
	if (*s++ != '.' || !(s = digits(s, &a, 0, 7)) || a > ATTEMPTS_MAX)
		return -1;
	n->attempts = (unsigned)a;
	n->exp = 0;
	if (*s == '.' && (!(s = digits(s + 1, &n->exp, TIME_DIGITS, 0)) || n->exp == 0))
		return -1;
	return *s ? -1 : 0;
}

void
name_format(char *buf, size_t len, const struct spool_name *n)
{
	int64_t t = name_time(n->t), exp = name_time(n->exp);
	if (exp)
		snprintf(buf, len, "%013lld.%s.%u.%013lld", (long long)t, n->id, n->attempts,
		         (long long)exp);
	else
		snprintf(buf, len, "%013lld.%s.%u", (long long)t, n->id, n->attempts);
}
