/* SPDX-License-Identifier: MIT */
/* util.c: clocks, the duration/size/time syntax every command shares, small I/O. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "spool_priv.h"

int64_t
spool_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A decimal number (fraction allowed) and a unit suffix from the table; at
 * most `most`. */
static int64_t
scaled(const char *s, const char *const units[], const int64_t mult[], int64_t deflt,
       double most)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -1;
	/* digits, a fraction, a unit: nothing of C's float syntax (0x10,
	 * 0x1p4, 1e3, inf) gets to strtod */
	const char *p = s;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p);)
			p++;
	}
	for (const char *u = p; *u; u++)
		if (!isalpha((unsigned char)*u))
			return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s)
		return -1;
	int64_t m = deflt;
	if (*end) {
		m = -1;
		for (int i = 0; units[i]; i++)
			if (strcasecmp(end, units[i]) == 0)
				m = mult[i];
		if (m < 0)
			return -1;
	}
	double r = v * (double)m;
	if (!(r <= most))
		return -1;
	return (int64_t)(r + 0.5);
}

int64_t
spool_parse_duration(const char *s)
{
	static const char *const u[] = {"ms", "s", "m", "h", "d", "w", NULL};
	static const int64_t m[] = {1, 1000, 60000, 3600000, 86400000, 604800000};
	/* a time a name can hold is at most SPOOL_TIME_MAX ms after the epoch, so
	 * now + any duration stays far from overflow */
	return scaled(s, u, m, 1000, (double)SPOOL_TIME_MAX);
}

int64_t
spool_parse_size(const char *s)
{
	static const char *const u[] = {"b", "k", "kb", "kib", "m", "mb", "mib", "g", "gb", "gib",
	                                "t", NULL};
	static const int64_t m[] = {1, 1 << 10, 1 << 10, 1 << 10, 1 << 20, 1 << 20, 1 << 20,
	                            1 << 30, 1 << 30, 1 << 30, 1LL << 40};
	return scaled(s, u, m, 1, 9.2e18);
}

static bool
leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "+HH", "+HHMM" or "+HH:MM" (or '-'), and nothing after: seconds east. */
static bool
utc_offset(const char *p, int *secs)
{
	int sign = *p++ == '-' ? -1 : 1, hh, mm = 0;
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
		return false;
	hh = (p[0] - '0') * 10 + (p[1] - '0');
	p += 2;
	if (*p == ':' || isdigit((unsigned char)*p)) {
		p += *p == ':';
		if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
			return false;
		mm = (p[0] - '0') * 10 + (p[1] - '0');
		p += 2;
	}
	if (*p || hh > 23 || mm > 59)
		return false;
	*secs = sign * (hh * 3600 + mm * 60);
	return true;
}

int64_t
spool_parse_time(const char *s)
{
	static const char days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct tm tm;
	const char *end;
	char *e;

	if (!s || !isdigit((unsigned char)s[*s == '@']))
		return -1; /* strptime would skip blanks; strtod takes hex, inf, nan */
	if (*s == '@') {
		if (s[1 + strspn(s + 1, "0123456789.")])
			return -1;
		errno = 0;
		double v = strtod(s + 1, &e);
		double ms = v * 1000 + 0.5; /* to the nearest ms: @1.001 is 1001 */
		return errno || *e || !(ms < (double)SPOOL_TIME_MAX + 1) ? -1 : (int64_t)ms;
	}
	static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
	                                   "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d", NULL};
	for (int i = 0; fmts[i]; i++) {
		memset(&tm, 0, sizeof tm);
		if (!(end = strptime(s, fmts[i], &tm)))
			continue;
		/* strptime takes any day up to 31: 2026-02-31 is no date */
		int y = tm.tm_year + 1900;
		if (tm.tm_mday > days[tm.tm_mon] + (tm.tm_mon == 1 && leap(y)))
			return -1;
		int64_t ms = 0;
		if (*end == '.') { /* fraction of a second */
			int64_t f = 0, scale = 1000;
			for (end++; isdigit((unsigned char)*end); end++)
				if (scale > 1)
					f = f * 10 + (*end - '0'), scale /= 10;
			ms = f * scale;
		}
		time_t t;
		int off;
		if (*end == 'Z' && !end[1]) {
			t = timegm(&tm);
		} else if (*end == '+' || *end == '-') {
			if (!utc_offset(end, &off))
				return -1;
			t = timegm(&tm) - off;
		} else if (!*end) {
			tm.tm_isdst = -1;
			t = mktime(&tm);
		} else {
			continue;
		}
		/* from 1970 to 2286: what the 13 digits of a name can hold */
		if (t < 0 || (int64_t)t > SPOOL_TIME_MAX / 1000)
			return -1;
		return (int64_t)t * 1000 + ms;
	}
	return -1;
}

/*
 * UTC by arithmetic (days to civil date, after Howard Hinnant's algorithm):
 * gmtime_r would read /etc/localtime first, a file and five syscalls for
 * every mq-send.
 */
char *
spool_fmt_time(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000, days = s / 86400, sod = s % 86400;
	int64_t z = days + 719468, era = z / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
	int64_t y = yoe + era * 400 + (m <= 2);
	snprintf(buf, len, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03dZ", (long long)y,
	         (long long)m, (long long)d, (long long)(sod / 3600), (long long)(sod / 60 % 60),
	         (long long)(sod % 60), (int)(ms % 1000));
	return buf;
}

char *
spool_fmt_age(int64_t ms, char *buf, size_t len)
{
	const char *sign = ms < 0 ? "-" : "";
	int64_t s = (ms < 0 ? -ms : ms) / 1000;
	if (s < 120)
		snprintf(buf, len, "%s%llds", sign, (long long)s);
	else if (s < 7200)
		snprintf(buf, len, "%s%lldm", sign, (long long)s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%s%lldh", sign, (long long)s / 3600);
	else
		snprintf(buf, len, "%s%lldd", sign, (long long)s / 86400);
	return buf;
}

/*
 * Every open of a file inside a spool comes here (spool-layout.md 3.1): a
 * spool holds regular files only.  O_NOFOLLOW: a link is never followed, so
 * a link to a file of another user is not read (or written) by a consumer
 * that may read it; O_NONBLOCK: a FIFO or a device never blocks the open
 * (nor a file lease); O_NOCTTY: a terminal never becomes ours.  What is
 * opened is then checked with fstat, and anything but a regular file is
 * closed and refused with SPOOL_ENOTREG (so is a link: ELOOP, and what
 * cannot be opened for writing because it is a FIFO or socket: ENXIO, or a
 * directory: EISDIR).  O_NONBLOCK stays set: reads and writes of a regular
 * file do not heed it.
 */
int
spool_open_file(int dirfd, const char *path, int flags, mode_t mode, struct stat *st)
{
	struct stat sb;
	int fd = openat(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY, mode);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENXIO || errno == EISDIR)
			errno = SPOOL_ENOTREG;
		return -1;
	}
	if (!st)
		st = &sb;
	/* a failed fstat is that failure (EIO...), never "not a regular
	 * file": that would set a message aside that is one */
	int err = fstat(fd, st) != 0 ? errno : !S_ISREG(st->st_mode) ? SPOOL_ENOTREG : 0;
	if (err) {
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

const char *
spool_strerror(int err)
{
	return err == SPOOL_ENOTREG ? "not a regular file" : strerror(err);
}

int
fsync_dir(int fd)
{
	/* EINVAL: a filesystem that cannot sync directories (some FUSE); nothing to do */
	return fsync(fd) == 0 || errno == EINVAL ? 0 : -1;
}

/* All of v (n pieces) to fd. */
int
writev_all(int fd, struct iovec *v, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (; n > 0 && (size_t)w >= v->iov_len; v++, n--)
			w -= (ssize_t)v->iov_len;
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + w;
			v->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int
write_all(int fd, const void *p, size_t n)
{
	struct iovec v = {(void *)p, n};
	return writev_all(fd, &v, 1);
}

/* Uniform in [0, n): for the jitter of backoffs. */
int64_t
random_below(int64_t n)
{
	uint64_t r;
	if (n <= 0)
		return 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != sizeof r)
		r = (uint64_t)spool_now() * 2654435761u ^ (uint64_t)getpid();
	return (int64_t)(r % (uint64_t)n);
}

char *
xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
strv_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}
