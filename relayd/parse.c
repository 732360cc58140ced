/* SPDX-License-Identifier: MIT */
/*
 * parse.c: what mq-relayd reads from the network and from token files,
 * parsed without a daemon around it (parse.h), so that fuzz/fuzz_request.c
 * and fuzz/fuzz_tokens.c run exactly the code the daemon runs.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"
#include "spool_priv.h"

int
message_path(const char *url, char *queue, size_t qlen, char *id, size_t idlen)
{
	const char *p = url;
	if (strncmp(p, "/v1/queues/", 11) != 0)
		return 0;
	p += 11;
	const char *slash = strchr(p, '/');
	if (!slash || (size_t)(slash - p) >= qlen)
		return slash ? -1 : 0;
	memcpy(queue, p, (size_t)(slash - p));
	queue[slash - p] = '\0';
	p = slash;
	if (strcmp(p, "/messages") == 0 || strcmp(p, "/messages/") == 0) {
		id[0] = '\0';
		return 1;
	}
	if (strcmp(p, "/batch") == 0) {
		id[0] = '\0';
		return 2;
	}
	if (strncmp(p, "/messages/", 10) != 0)
		return 0;
	p += 10;
	if (strlen(p) >= idlen)
		return -1;
	strcpy(id, p);
	return 1;
}

bool
relay_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 200)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == ',')
			return false;
	return true;
}

const char *
bearer_token(const char *h)
{
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	return h;
}

void
content_digest(const char *h, char *out, size_t len)
{
	out[0] = '\0';
	const char *p = h ? strstr(h, "sha-256=:") : NULL;
	if (!p)
		return;
	const char *end = strchr(p + 9, ':');
	if (!end || (size_t)(end + 1 - p) >= len)
		return;
	memcpy(out, p, (size_t)(end + 1 - p));
	out[end + 1 - p] = '\0';
}

long
retry_after(const char *p, size_t len)
{
	if (len <= 12 || strncasecmp(p, "Retry-After:", 12) != 0)
		return -1;
	/* the value, NUL-terminated: libcurl's line is not, and strtol would
	 * skip a blank value's "\r\n" and read on past its end */
	char v[32];
	size_t k = len - 12 < sizeof v - 1 ? len - 12 : sizeof v - 1;
	memcpy(v, p + 12, k);
	v[k] = '\0';
	long s = strtol(v, NULL, 10);
	return s > 0 && s < 86400 ? s : 0;
}

void
token_hash(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* The next line of fp that is not blank or a # comment, trimmed (in *line,
 * which getline grows); NULL at the end (or an error: ferror tells). */
static char *
next_line(FILE *fp, char **line, size_t *cap, int *lineno)
{
	while (getline(line, cap, fp) >= 0) {
		if (lineno)
			++*lineno;
		char *s = spool_trim(*line);
		if (*s && *s != '#')
			return s;
	}
	return NULL;
}

void
tokens_free(struct token *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t[i].queues)
			for (char **q = t[i].queues; *q; q++)
				free(*q);
		free(t[i].queues);
	}
	free(t);
}

int
tokens_parse(FILE *fp, const char *file, struct token **out, size_t *nout, struct spool_err *e)
{
	struct token *v = *out;
	size_t n = *nout;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = -1;
	for (char *s; (s = next_line(fp, &line, &cap, &lineno));) {
		if (n == MAX_TOKENS) {
			spool_fail(e, EX_CONFIG, "token-file %s: over %d tokens", file, MAX_TOKENS);
			goto out;
		}
		struct token *nv = realloc(v, (n + 1) * sizeof *v);
		if (!nv) {
			spool_fail(e, EX_OSERR, "out of memory");
			goto out;
		}
		v = nv;
		struct token *t = &v[n++];
		memset(t, 0, sizeof *t);
		char *tok = strtok(s, " \t");
		token_hash(tok, strlen(tok), t->hash);
		size_t nq = 0;
		for (char *q; (q = strtok(NULL, " \t,"));) {
			if (!spool_queue_name_ok(q)) {
				spool_fail(e, EX_CONFIG, "token-file %s:%d: bad queue name '%s'", file, lineno,
				           spool_printable(q));
				goto out;
			}
			char **nq2 = realloc(t->queues, (nq + 2) * sizeof *nq2);
			if (!nq2 || !(nq2[nq] = strdup(q))) {
				if (nq2)
					t->queues = nq2, nq2[nq] = NULL;
				spool_fail(e, EX_OSERR, "out of memory");
				goto out;
			}
			t->queues = nq2;
			t->queues[++nq] = NULL;
		}
	}
	if (ferror(fp)) {
		spool_fail(e, EX_CONFIG, "token-file %s: %s", file, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	free(line);
	*out = v, *nout = n;
	return rc;
}

const char *
token_first(FILE *fp, char **tok)
{
	char *line = NULL;
	size_t cap = 0;
	const char *why = NULL;
	*tok = NULL;
	for (char *s; !why && !*tok && (s = next_line(fp, &line, &cap, NULL));) {
		s[strcspn(s, " \t")] = '\0';
		for (const char *p = s; *p && !why; p++)
			if ((unsigned char)*p < 0x21 || *p == 0x7f)
				why = "control character in the token";
		if (!why && !(*tok = strdup(s)))
			why = "out of memory";
	}
	if (!why && !*tok)
		why = ferror(fp) ? strerror(errno) : "holds no token";
	if (line)
		memset(line, 0, cap); /* the token was in it */
	free(line);
	return why;
}

void
users_free(struct user *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].hash)
			memset(v[i].hash, 0, strlen(v[i].hash));
		free(v[i].hash);
	}
	free(v);
}

int
users_parse(FILE *fp, const char *file, struct user **out, size_t *nout, struct spool_err *e)
{
	struct user *v = *out;
	size_t n = *nout;
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0, rc = -1;
	for (char *s; (s = next_line(fp, &line, &cap, &lineno));) {
		char *colon = strchr(s, ':');
		size_t ul = colon ? (size_t)(colon - s) : 0;
		bool ok = colon && ul >= 1 && ul < sizeof v->name;
		for (const char *p = s; ok && *p; p++)
			ok = (unsigned char)*p > 0x20 && *p != 0x7f;
		/* crypt(3) hashes start with $ID$ (or are DES, 13 characters of ./0-9A-Za-z) */
		const char *h = colon ? colon + 1 : "";
		if (!ok || !(h[0] == '$' || strlen(h) == 13) || strchr(h, ':')) {
			spool_fail(e, EX_CONFIG, "password-file %s:%d: want user:HASH (a crypt(3) hash, "
			           "from openssl passwd -6 or mkpasswd)", file, lineno);
			goto out;
		}
		if (n == MAX_USERS) {
			spool_fail(e, EX_CONFIG, "password-file %s: over %d users", file, MAX_USERS);
			goto out;
		}
		struct user *nv = realloc(v, (n + 1) * sizeof *v);
		if (!nv) {
			spool_fail(e, EX_OSERR, "out of memory");
			goto out;
		}
		v = nv;
		memcpy(v[n].name, s, ul);
		v[n].name[ul] = '\0';
		if (!(v[n].hash = strdup(h))) {
			spool_fail(e, EX_OSERR, "out of memory");
			goto out;
		}
		n++;
	}
	if (ferror(fp)) {
		spool_fail(e, EX_CONFIG, "password-file %s: %s", file, strerror(errno));
		goto out;
	}
	if (n == 0) {
		spool_fail(e, EX_CONFIG, "password-file %s: no user:HASH line", file);
		goto out;
	}
	rc = 0;
out:
	if (line)
		memset(line, 0, cap);
	free(line);
	*out = v, *nout = n;
	return rc;
}

bool
basic_auth(const char *h, char *user, size_t ulen, char *pass, size_t plen)
{
	if (!h || strncasecmp(h, "Basic ", 6) != 0)
		return false;
	h += 6;
	while (*h == ' ')
		h++;
	size_t n = strcspn(h, " \t\r\n");
	if (n == 0 || n > 1024 || n % 4)
		return false;
	unsigned char dec[1024];
	int k = EVP_DecodeBlock(dec, (const unsigned char *)h, (int)n);
	if (k < 0)
		return false;
	/* EVP_DecodeBlock counts the padding as bytes of zeros */
	for (const char *p = h + n; p > h && p[-1] == '='; p--)
		k--;
	if (k < 0)
		return false;
	const unsigned char *colon = memchr(dec, ':', (size_t)k);
	if (!colon || memchr(dec, '\0', (size_t)k))
		return false;
	size_t ul = (size_t)(colon - dec), pl = (size_t)k - ul - 1;
	bool ok = ul < ulen && pl < plen;
	if (ok) {
		memcpy(user, dec, ul);
		user[ul] = '\0';
		memcpy(pass, colon + 1, pl);
		pass[pl] = '\0';
	}
	memset(dec, 0, sizeof dec);
	return ok;
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

long
form_value(const char *body, size_t len, const char *name, size_t nth, char *out, size_t outlen)
{
	size_t nl = strlen(name), seen = 0;
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *f_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(f_end - p));
		if (eq && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0 && seen++ == nth) {
			size_t k = 0;
			for (const char *c = eq + 1; c < f_end; c++) {
				int ch = (unsigned char)*c;
				if (ch == '+') {
					ch = ' ';
				} else if (ch == '%') {
					int hi = c + 2 < f_end ? hexval(c[1]) : -1, lo = hi >= 0 ? hexval(c[2]) : -1;
					if (lo < 0)
						return -1;
					ch = hi * 16 + lo;
					c += 2;
				}
				if (k + 1 >= outlen || ch == 0) /* a NUL would cut the value short unseen */
					return -1;
				out[k++] = (char)ch;
			}
			out[k] = '\0';
			return (long)k;
		}
		p = f_end + 1;
	}
	return -1;
}

/* Copy the word at *p into out (fits, not empty, printable ASCII: no NUL,
 * CR or other control character), past it and one blank after it. */
static int
word(const char **p, const char *end, char *out, size_t len)
{
	const char *w = *p;
	for (; *p < end && **p != ' '; (*p)++)
		if ((unsigned char)**p < 0x21 || (unsigned char)**p > 0x7e)
			return -1;
	size_t n = (size_t)(*p - w);
	if (n == 0 || n >= len)
		return -1;
	memcpy(out, w, n);
	out[n] = '\0';
	if (*p < end)
		(*p)++;
	return 0;
}

int
batch_head(const char *line, size_t n, char *id, size_t idlen, long long *size, char *digest,
           size_t dlen)
{
	const char *p = line, *end = line + n;
	char num[24];
	digest[0] = '\0';
	if (word(&p, end, id, idlen) != 0 || word(&p, end, num, sizeof num) != 0)
		return -1;
	for (const char *d = num; *d; d++)
		if (*d < '0' || *d > '9')
			return -1;
	if (strlen(num) > 18)
		return -1;
	*size = strtoll(num, NULL, 10);
	if (p < end) {
		if (word(&p, end, digest, dlen) != 0 || p < end || strncmp(digest, "sha-256=:", 9) != 0)
			return -1;
	}
	return 0;
}

int
batch_result(const char *line, size_t n, char *id, size_t idlen, const char **text, size_t *tlen)
{
	const char *p = line, *end = line + n;
	char num[8];
	if (word(&p, end, num, sizeof num) != 0 || strlen(num) != 3)
		return -1;
	for (const char *d = num; *d; d++)
		if (*d < '0' || *d > '9')
			return -1;
	if (word(&p, end, id, idlen) != 0)
		return -1;
	*text = p;
	*tlen = (size_t)(end - p);
	return (int)strtol(num, NULL, 10);
}
