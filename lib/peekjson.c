/* SPDX-License-Identifier: MIT */
/*
 * peekjson.c: the JSON of a listed message and of a whole one, made in one
 * place so that mq-peek --json and mq-relayd's page say the same.  A file of
 * its own so that only the commands that print JSON link jansson.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

/* JSON strings are UTF-8: text that is not has such bytes as '?'. */
static json_t *
text(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	char buf[4096];
	size_t k = 0;
	for (; *s && k + 1 < sizeof buf; s++)
		buf[k++] = (unsigned char)*s < 0x80 ? *s : '?';
	buf[k] = '\0';
	return json_string(buf);
}

void *
spool_entry_json(spool_queue *q, const struct spool_entry *en)
{
	json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:o, s:o}", "state",
	                      spool_state_name(en->state), "id", en->id, "attempts",
	                      (json_int_t)en->attempts, "created", (json_int_t)(en->created / 1000),
	                      "size", (json_int_t)en->body_size, "first_line", text(en->line), "path",
	                      text(en->path));
	if (!o)
		return NULL;
	if (en->state == SPOOL_DELAYED || en->state == SPOOL_READY)
		json_object_set_new(o, "due", json_integer(en->t / 1000));
	if (en->state == SPOOL_CLAIMED)
		json_object_set_new(o, "lease_until", json_integer(en->t / 1000));
	if (en->expires)
		json_object_set_new(o, "expires", json_integer(en->expires / 1000));
	if (*en->reason && en->state == SPOOL_DEAD)
		json_object_set_new(o, "dead_reason", text(en->reason));
	if (*en->key)
		json_object_set_new(o, "key", text(en->key));
	struct spool_failure f;
	if (spool_entry_failure(q, en, &f) > 0) {
		json_t *lf = json_pack("{s:o, s:o}", "status", text(f.status), "stderr",
		                       text(f.stderr_tail));
		if (f.at)
			json_object_set_new(lf, "at", json_integer(f.at / 1000));
		if (f.next_try)
			json_object_set_new(lf, "next_try", json_integer(f.next_try / 1000));
		json_object_set_new(o, "last_failure", lf);
	}
	return o;
}

static json_t *
base64(const unsigned char *p, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
		             (i + 2 < n ? p[i + 2] : 0);
		*o++ = abc[v >> 18 & 63];
		*o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	json_t *j = json_stringn(out, (size_t)(o - out));
	free(out);
	return j;
}

void *
spool_message_json(spool_queue *q, const struct spool_entry *en, size_t cap, struct spool_err *e)
{
	int fd = spool_open_file(AT_FDCWD, en->path, O_RDONLY, 0, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s", en->path), NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int err = errno;
		close(fd);
		return spool_fail_errno(e, err, "stat %s", en->path), NULL;
	}
	/* the header block is bounded (HEAD_LIMIT); the body is read up to cap */
	size_t want = (size_t)st.st_size;
	if (cap < SIZE_MAX - HEAD_LIMIT && want > HEAD_LIMIT + cap)
		want = HEAD_LIMIT + cap;
	char *buf = malloc(want + 1);
	size_t len = 0;
	while (buf && len < want) {
		ssize_t r = pread(fd, buf + len, want - len, (off_t)len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	int err = errno;
	close(fd);
	if (!buf)
		return spool_fail_errno(e, ENOMEM, "read %s", en->path), NULL;
	buf[len] = '\0';
	const char *body = body_start(buf, len);
	if (!body) {
		free(buf);
		return spool_fail_errno(e, len < want ? err : EINVAL, "read %s: not a message file",
		                        en->path), NULL;
	}
	json_t *o = spool_entry_json(q, en), *h = json_array();
	for (const char *p = buf, *end = body - 1; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;
		if (!nl)
			nl = end;
		if (nl > p && (colon = memchr(p, ':', (size_t)(nl - p)))) {
			const char *v = colon + 1 + (colon + 1 < nl && colon[1] == ' ');
			json_t *name = json_stringn(p, (size_t)(colon - p)), *val = json_stringn(v, (size_t)(nl - v));
			json_array_append_new(h, json_pack("{s:o, s:o}", "name", name ? name : text("?"),
			                                   "value", val ? val : text("?")));
		}
		p = nl + 1;
	}
	size_t blen = len - (size_t)(body - buf);
	int64_t bsize = st.st_size - (body - buf);
	if (blen > cap)
		blen = cap;
	/* text: UTF-8 without NUL; a cut may split a character, so try a little shorter */
	json_t *b = memchr(body, '\0', blen) ? NULL : json_stringn(body, blen);
	for (size_t k = 1; !b && (int64_t)blen < bsize && k <= 3 && k <= blen; k++)
		if ((b = json_stringn(body, blen - k)))
			blen -= k;
	json_object_set_new(o, "headers", h);
	json_object_set_new(o, "body_size", json_integer(bsize));
	json_object_set_new(o, "body_truncated", json_boolean((int64_t)blen < bsize));
	if (b)
		json_object_set_new(o, "body", b);
	else
		json_object_set_new(o, "body_base64", base64((const unsigned char *)body, blen));
	free(buf);
	return o;
}
