/* SPDX-License-Identifier: MIT */
/*
 * conf.c: mq-relayd.conf (mq-relayd.conf(5)).  Top-level "key value" lines,
 * and four kinds of blocks whose options are indented below them:
 * `consume QUEUE CMD`, `forward QUEUE URL`, `listen ADDR:PORT` and
 * `dashboard ADDR:PORT` (at most one).  Every
 * error names file:line and is EX_CONFIG; a bad file is refused whole (at
 * start, and on SIGHUP, which then keeps the running configuration).  Linked
 * by the fuzz harness on its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "relayd.h"

void
consumer_free(struct consumer *k)
{
	if (!k)
		return;
	free(k->cmd);
	free(k->url);
	free(k->to);
	free(k->token_file);
	free(k->tls_ca);
	free(k->tls_cert);
	free(k->tls_key);
	free(k->overrides);
	free(k);
}

static void
listener_free(struct listener *l)
{
	for (size_t i = 0; i < l->ntoken_files; i++)
		free(l->token_files[i]);
	free(l->token_files);
	free(l->addr);
	free(l->tls_cert);
	free(l->tls_key);
	free(l->tls_client_ca);
	free(l);
}

static void
dashboard_free(struct dashboard *d)
{
	if (!d)
		return;
	free(d->addr);
	free(d->password_file);
	free(d->tls_cert);
	free(d->tls_key);
	free(d);
}

int
dashboard_loopback(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0;
}

void
conf_free(struct conf *c)
{
	dashboard_free(c->dashboard);
	struct consumer *n;
	for (struct consumer *k = c->consumers; k; k = n) {
		n = k->next;
		consumer_free(k);
	}
	struct listener *ln;
	for (struct listener *l = c->listeners; l; l = ln) {
		ln = l->next;
		listener_free(l);
	}
	free(c->spool);
	free(c->name);
	memset(c, 0, sizeof *c);
}

int
consumer_same(const struct consumer *a, const struct consumer *b)
{
	if (a->kind != b->kind || strcmp(a->queue, b->queue) != 0)
		return 0;
	if (a->kind == CONSUME_EXEC)
		return strcmp(a->cmd, b->cmd) == 0;
	return strcmp(a->url, b->url) == 0 && strcmp(a->to, b->to) == 0;
}

/* "key value" or "key = value" */
static char *
split(char *s)
{
	char *v = s + strcspn(s, " \t=");
	if (*v)
		*v++ = '\0';
	v = spool_trim(v);
	if (*v == '=')
		v = spool_trim(v + 1);
	return v;
}

struct parse {
	const char *path;
	int line;
	struct spool_err *e;
};

static int
bad(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
bad(struct parse *p, const char *fmt, ...)
{
	char what[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	return spool_fail(p->e, EX_CONFIG, "%s:%d: %s", p->path, p->line, what);
}

static int
duration(struct parse *p, const char *key, const char *v, int64_t *out)
{
	if ((*out = spool_parse_duration(v)) < 0)
		return bad(p, "bad duration for %s: '%.100s'", key, v);
	return 0;
}

static int
count(struct parse *p, const char *key, const char *v, long max, long *out)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!*v || *end || n < 1 || n > max)
		return bad(p, "bad value for %s: '%.100s' (1 to %ld)", key, v, max);
	*out = n;
	return 0;
}

static int
set_str(struct parse *p, char **dst, const char *v)
{
	free(*dst);
	if (!(*dst = strdup(v)))
		return spool_fail(p->e, EX_OSERR, "%s:%d: out of memory", p->path, p->line);
	return 0;
}

/* A secret file (tokens): it must exist and be readable by its owner only. */
static int
secret_file(struct parse *p, const char *key, const char *v)
{
	struct stat st;
	if (stat(v, &st) != 0)
		return bad(p, "%s %s: %s", key, v, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return bad(p, "%s %s: not a regular file", key, v);
	if (st.st_mode & 077)
		return bad(p, "%s %s: readable by group or others (mode %03o): chmod 600 it", key, v,
		           (unsigned)(st.st_mode & 0777));
	return 0;
}

/* lease, backoff, max-attempts: checked now, applied over the queue's config */
static int
override(struct parse *p, struct consumer *c, const char *k, const char *v)
{
	struct spool_config probe = {0};
	if (spool_config_set(&probe, k, v) != 0)
		return bad(p, "bad value for %s: '%.100s'", k, v);
	size_t add = strlen(k) + strlen(v) + 2, have = 0;
	for (size_t i = 0; i < c->noverrides * 2; i++)
		have += strlen(c->overrides + have) + 1;
	char *o = realloc(c->overrides, have + add);
	if (!o)
		return spool_fail(p->e, EX_OSERR, "%s:%d: out of memory", p->path, p->line);
	strcpy(o + have, k);
	strcpy(o + have + strlen(k) + 1, v);
	c->overrides = o;
	c->noverrides++;
	return 0;
}

static bool
is_override(const char *k)
{
	return strcmp(k, "lease") == 0 || strcmp(k, "backoff") == 0 || strcmp(k, "max-attempts") == 0;
}

static int
consumer_option(struct parse *p, struct consumer *c, const char *k, const char *v)
{
	if (strcmp(k, "concurrency") == 0)
		return count(p, k, v, 1024, &c->concurrency);
	if (strcmp(k, "timeout") == 0)
		return duration(p, k, v, &c->timeout);
	if (is_override(k))
		return override(p, c, k, v);
	if (c->kind == CONSUME_FORWARD) {
		if (strcmp(k, "to") == 0) {
			if (!spool_queue_name_ok(v))
				return bad(p, "to: bad queue name '%s'", spool_printable(v));
			return set_str(p, &c->to, v);
		}
		if (strcmp(k, "batch") == 0)
			return count(p, k, v, 1024, &c->batch);
		if (strcmp(k, "token-file") == 0)
			return secret_file(p, k, v) ? -1 : set_str(p, &c->token_file, v);
		if (strcmp(k, "tls-ca") == 0)
			return set_str(p, &c->tls_ca, v);
		if (strcmp(k, "tls-cert") == 0)
			return set_str(p, &c->tls_cert, v);
		if (strcmp(k, "tls-key") == 0)
			return secret_file(p, k, v) ? -1 : set_str(p, &c->tls_key, v);
		return bad(p, "unknown forward option '%s'", k);
	}
	return bad(p, "unknown consumer option '%s'", k);
}

static int
listener_option(struct parse *p, struct listener *l, const char *k, const char *v)
{
	if (strcmp(k, "token-file") == 0) {
		if (secret_file(p, k, v) != 0)
			return -1;
		char **t = realloc(l->token_files, (l->ntoken_files + 2) * sizeof *t);
		if (!t)
			return spool_fail(p->e, EX_OSERR, "%s:%d: out of memory", p->path, p->line);
		l->token_files = t;
		t[l->ntoken_files + 1] = NULL;
		t[l->ntoken_files] = NULL;
		if (set_str(p, &t[l->ntoken_files], v) != 0)
			return -1;
		l->ntoken_files++;
		return 0;
	}
	if (strcmp(k, "tls-cert") == 0)
		return set_str(p, &l->tls_cert, v);
	if (strcmp(k, "tls-key") == 0)
		return secret_file(p, k, v) ? -1 : set_str(p, &l->tls_key, v);
	if (strcmp(k, "tls-client-ca") == 0)
		return set_str(p, &l->tls_client_ca, v);
	if (strcmp(k, "max-connections") == 0)
		return count(p, k, v, 100000, &l->max_connections);
	if (strcmp(k, "max-per-address") == 0)
		return count(p, k, v, 100000, &l->max_per_address);
	if (strcmp(k, "request-timeout") == 0) {
		if (duration(p, k, v, &l->request_timeout) != 0)
			return -1;
		if (l->request_timeout < 1000)
			return bad(p, "request-timeout: at least 1s, not '%.100s'", v);
		return 0;
	}
	return bad(p, "unknown listen option '%s'", k);
}

static int
dashboard_option(struct parse *p, struct dashboard *d, const char *k, const char *v)
{
	if (strcmp(k, "password-file") == 0)
		return secret_file(p, k, v) ? -1 : set_str(p, &d->password_file, v);
	if (strcmp(k, "actions") == 0) {
		if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
			return bad(p, "actions: on or off, not '%.100s'", v);
		d->actions = strcmp(v, "on") == 0;
		return 0;
	}
	if (strcmp(k, "tls-cert") == 0)
		return set_str(p, &d->tls_cert, v);
	if (strcmp(k, "tls-key") == 0)
		return secret_file(p, k, v) ? -1 : set_str(p, &d->tls_key, v);
	if (strcmp(k, "max-connections") == 0)
		return count(p, k, v, 10000, &d->max_connections);
	return bad(p, "unknown dashboard option '%s'", k);
}

/* ADDR:PORT with a numeric IPv4 address, [IPv6], or * for every address. */
static int
addr_ok(const char *v)
{
	const char *colon = strrchr(v, ':');
	if (!colon || colon == v)
		return 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || *end || port < 1 || port > 65535)
		return 0;
	if (v[0] == '[')
		return colon[-1] == ']' && colon - v > 2;
	if (colon - v == 1 && v[0] == '*')
		return 1;
	for (const char *c = v; c < colon; c++)
		if ((*c < '0' || *c > '9') && *c != '.')
			return 0;
	return 1;
}

/* A block's line checked once it is complete (at the next block or the end). */
static int
block_done(struct parse *p, struct consumer *c, struct listener *l, struct dashboard *d)
{
	if (d && (!d->tls_cert) != (!d->tls_key))
		return bad(p, "dashboard %s: tls-cert and tls-key go together", d->addr);
	/* the page shows message bodies: nobody off this host sees it without a login */
	if (d && !d->password_file && !dashboard_loopback(d->addr))
		return bad(p, "dashboard %s: not a loopback address: a password-file is required", d->addr);
	if (c && c->kind == CONSUME_FORWARD && (!c->tls_cert) != (!c->tls_key))
		return bad(p, "forward %s: tls-cert and tls-key go together", c->queue);
	if (l && (!l->tls_cert) != (!l->tls_key))
		return bad(p, "listen %s: tls-cert and tls-key go together", l->addr);
	if (l && l->tls_client_ca && !l->tls_cert)
		return bad(p, "listen %s: tls-client-ca needs tls-cert and tls-key", l->addr);
	return 0;
}

static struct consumer *
new_consumer(struct parse *p, enum consumer_kind kind, char *v)
{
	char *q = v, *rest = v + strcspn(v, " \t");
	if (*rest)
		*rest++ = '\0';
	rest = spool_trim(rest);
	const char *what = kind == CONSUME_EXEC ? "consume" : "forward";
	if (!spool_queue_name_ok(q))
		return bad(p, "%s: bad queue name '%s'", what, spool_printable(q)), NULL;
	if (!*rest)
		return bad(p, "%s %s: no %s", what, q, kind == CONSUME_EXEC ? "command" : "URL"), NULL;
	if (kind == CONSUME_FORWARD) {
		if (strncmp(rest, "http://", 7) != 0 && strncmp(rest, "https://", 8) != 0)
			return bad(p, "forward %s: URL must start with http:// or https://, not '%.100s'",
			           q, spool_printable(rest)), NULL;
		if (strpbrk(rest, " \t?#"))
			return bad(p, "forward %s: bad URL '%.100s'", q, spool_printable(rest)), NULL;
	}
	struct consumer *c = calloc(1, sizeof *c);
	if (!c)
		return spool_fail(p->e, EX_OSERR, "%s:%d: out of memory", p->path, p->line), NULL;
	c->kind = kind;
	strcpy(c->queue, q);
	/* a forward: transfers in flight share the peer's group commits, so its
	 * rate is about concurrency / commit time (bench/RESULTS.md) */
	c->concurrency = kind == CONSUME_EXEC ? 1 : 128;
	c->batch = 64; /* a forward: up to 64 messages a request (forward.c) */
	c->timeout = 60 * 60 * 1000;
	if (kind == CONSUME_EXEC) {
		c->cmd = strdup(rest);
	} else {
		size_t n = strlen(rest);
		while (n > 8 && rest[n - 1] == '/')
			rest[--n] = '\0';
		c->url = strdup(rest);
		c->to = strdup(q);
	}
	if ((kind == CONSUME_EXEC && !c->cmd) || (kind == CONSUME_FORWARD && (!c->url || !c->to))) {
		consumer_free(c);
		return spool_fail(p->e, EX_OSERR, "%s:%d: out of memory", p->path, p->line), NULL;
	}
	return c;
}

/* A file the operator names (this config, token files, TLS files): links
 * are followed, as operators keep configs that way, but only a regular file
 * is read, and opening never blocks (a FIFO would hang the daemon at start
 * or at SIGHUP).  NULL with errno, SPOOL_ENOTREG for what is not a file. */
FILE *
conf_fopen(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return NULL;
	int err = fstat(fd, &st) != 0 ? errno : !S_ISREG(st.st_mode) ? SPOOL_ENOTREG : 0;
	FILE *f = err ? NULL : fdopen(fd, "r");
	if (!f) {
		err = err ? err : errno;
		close(fd);
		errno = err;
	}
	return f;
}

int
conf_read(const char *path, struct conf *c, struct spool_err *e)
{
	FILE *f = conf_fopen(path);
	char *buf = NULL;
	size_t cap = 0;
	struct parse p = {.path = path, .e = e};
	struct consumer *cur = NULL, **tail = &c->consumers;
	struct listener *lcur = NULL, **ltail = &c->listeners;
	struct dashboard *dcur = NULL;

	memset(c, 0, sizeof *c);
	c->rescan = 60 * 1000;
	c->stop_timeout = 30 * 1000;
	c->kill_grace = 5 * 1000;
	if (!f)
		return spool_fail(e, errno == ENOENT || errno == SPOOL_ENOTREG ? EX_CONFIG :
		                                                                  spool_errno_code(errno),
		                  "read %s: %s", path, spool_strerror(errno));
	while (getline(&buf, &cap, f) >= 0) {
		p.line++;
		bool indented = buf[0] == ' ' || buf[0] == '\t';
		char *s = spool_trim(buf);
		if (!*s || *s == '#')
			continue;
		char *v = split(s);
		if (indented && (cur || lcur || dcur)) {
			if (!*v) {
				bad(&p, "%s: missing value", s);
				goto fail;
			}
			if ((cur    ? consumer_option(&p, cur, s, v) :
			     lcur   ? listener_option(&p, lcur, s, v) :
			              dashboard_option(&p, dcur, s, v)) != 0)
				goto fail;
			continue;
		}
		if (indented) {
			bad(&p, "indented '%s' outside a consume, forward, listen or dashboard block", s);
			goto fail;
		}
		if (block_done(&p, cur, lcur, dcur) != 0)
			goto fail;
		cur = NULL, lcur = NULL, dcur = NULL;
		if (!*v) {
			bad(&p, "%s: missing value", s);
			goto fail;
		}
		if (strcmp(s, "spool") == 0) {
			if (set_str(&p, &c->spool, v) != 0)
				goto fail;
		} else if (strcmp(s, "name") == 0) {
			for (const char *k = v; *k; k++)
				if ((unsigned char)*k <= ' ' || *k == 0x7f || *k == ',') {
					bad(&p, "name: no blanks, commas or control characters: '%s'",
					    spool_printable(v));
					goto fail;
				}
			if (strlen(v) > 200) {
				bad(&p, "name: over 200 bytes");
				goto fail;
			}
			if (set_str(&p, &c->name, v) != 0)
				goto fail;
		} else if (strcmp(s, "rescan") == 0) {
			if (duration(&p, s, v, &c->rescan) != 0)
				goto fail;
			if (c->rescan < 1000) {
				bad(&p, "rescan: at least 1s, not '%.100s'", v);
				goto fail;
			}
		} else if (strcmp(s, "stop-timeout") == 0) {
			if (duration(&p, s, v, &c->stop_timeout) != 0)
				goto fail;
		} else if (strcmp(s, "kill-grace") == 0) {
			if (duration(&p, s, v, &c->kill_grace) != 0)
				goto fail;
		} else if (strcmp(s, "consume") == 0 || strcmp(s, "forward") == 0) {
			if (!(cur = new_consumer(&p, s[0] == 'c' ? CONSUME_EXEC : CONSUME_FORWARD, v)))
				goto fail;
			*tail = cur;
			tail = &cur->next;
		} else if (strcmp(s, "listen") == 0) {
			if (!addr_ok(v)) {
				bad(&p, "listen: want ADDR:PORT (127.0.0.1:8080, [::1]:8080, *:8080), not '%s'",
				    spool_printable(v));
				goto fail;
			}
			if (!(lcur = calloc(1, sizeof *lcur)) || !(lcur->addr = strdup(v))) {
				free(lcur);
				lcur = NULL;
				spool_fail(e, EX_OSERR, "%s:%d: out of memory", path, p.line);
				goto fail;
			}
			lcur->line = p.line;
			lcur->max_connections = 1024;
			lcur->max_per_address = 256; /* twice a forward's default concurrency */
			lcur->request_timeout = 60 * 1000;
			*ltail = lcur;
			ltail = &lcur->next;
		} else if (strcmp(s, "dashboard") == 0) {
			if (!addr_ok(v)) {
				bad(&p, "dashboard: want ADDR:PORT (127.0.0.1:8081, [::1]:8081), not '%s'",
				    spool_printable(v));
				goto fail;
			}
			if (c->dashboard) {
				bad(&p, "dashboard: one only (the first is on line %d)", c->dashboard->line);
				goto fail;
			}
			if (!(dcur = calloc(1, sizeof *dcur)) || !(dcur->addr = strdup(v))) {
				free(dcur);
				dcur = NULL;
				spool_fail(e, EX_OSERR, "%s:%d: out of memory", path, p.line);
				goto fail;
			}
			dcur->line = p.line;
			dcur->max_connections = 64;
			c->dashboard = dcur;
		} else {
			bad(&p, "unknown directive '%s'", s);
			goto fail;
		}
	}
	if (ferror(f) || !feof(f)) { /* getline's ENOMEM leaves no error flag */
		int err = errno ? errno : EIO;
		spool_fail(e, spool_errno_code(err), "read %s: %s", path, strerror(err));
		goto fail;
	}
	if (block_done(&p, cur, lcur, dcur) != 0)
		goto fail;
	free(buf);
	fclose(f);
	if (!c->consumers && !c->listeners && !c->dashboard) {
		conf_free(c);
		return spool_fail(e, EX_CONFIG,
		                  "%s: nothing to do (no consume, forward, listen or dashboard line)", path);
	}
	return 0;
fail:
	free(buf);
	fclose(f);
	conf_free(c);
	return -1;
}

/* The whole of a file the config names (a certificate, a key), by
 * conf_fopen's rules: malloc'd, or NULL with e set. */
char *
conf_slurp(const char *path, struct spool_err *e)
{
	FILE *f = conf_fopen(path);
	char *buf = NULL;
	size_t len = 0;
	if (!f) {
		spool_fail(e, EX_CONFIG, "%s: %s", path, spool_strerror(errno));
		return NULL;
	}
	FILE *m = open_memstream(&buf, &len);
	char chunk[4096];
	size_t k;
	bool ok = m != NULL;
	while (ok && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
		ok = fwrite(chunk, 1, k, m) == k;
	/* a read error (a directory, EIO) is said, not a truncated certificate */
	int err = ferror(f) ? errno : 0;
	if (m && fclose(m) != 0)
		ok = false;
	fclose(f);
	if (err || !ok || !buf) {
		free(buf);
		if (err)
			spool_fail(e, EX_CONFIG, "%s: %s", path, strerror(err));
		else
			spool_fail(e, EX_OSERR, "out of memory");
		return NULL;
	}
	return buf;
}

/* ADDR:PORT (addr_ok checked it) as a socket address: 0, or -1. */
int
conf_sockaddr(const char *a, struct sockaddr_storage *ss, bool *v6)
{
	char host[128];
	const char *colon = strrchr(a, ':');
	size_t hl = (size_t)(colon - a);
	if (hl >= sizeof host)
		return -1;
	memcpy(host, a, hl);
	host[hl] = '\0';
	int port = (int)strtol(colon + 1, NULL, 10);
	memset(ss, 0, sizeof *ss);
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		host[hl - 1] = '\0';
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return inet_pton(AF_INET6, host + 1, &s6->sin6_addr) == 1 ? 0 : -1;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	*v6 = false;
	if (strcmp(host, "*") == 0) {
		s4->sin_addr.s_addr = htonl(INADDR_ANY);
		return 0;
	}
	return inet_pton(AF_INET, host, &s4->sin_addr) == 1 ? 0 : -1;
}
