/* SPDX-License-Identifier: MIT */
/*
 * fuzz_msg.c: the header block of a message file (msg.c, peek.c), which is
 * whatever a producer, a relay peer or an operator put in new/.  The input
 * is the whole file.  It goes into new/ of a throwaway queue under a valid
 * name and travels the consumer's way: listed with SPOOL_LIST_PEEK, claimed,
 * its headers parsed, its body read twice (spool_msg_read, then
 * spool_msg_body_fd), then acked or, for about one input in eight, buried
 * and listed again in dead/.  A file without an end to its header block is
 * buried by the claim itself, with a reason that says so (spool-layout.md
 * 3.1), and never given.  What the library says must agree with the file: the body is the
 * bytes after the first empty line within the first 256 KiB, the headers
 * are the non-empty lines before it.
 */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz.h"

#define NAME "0000000001000.01M8026ZVVR2V8W4T6Y1Z3B5C7.0"

static spool_queue *q;
static const uint8_t *in;  /* the input, for the callbacks */
static size_t insize;
static long want_body;     /* body bytes, -1 when the block has no end */
static char *buf;          /* what was read back */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	q = fuzz_queue("m");
	return 0;
}

/* new/ as mq-peek -v sees it: one entry, and what it says is right. */
static int
peeked_new(const struct spool_entry *en, void *arg)
{
	(void)arg;
	if (strcmp(en->name, NAME) != 0 || en->size != (int64_t)insize)
		abort();
	if (en->body_size >= 0 && en->body_size != want_body)
		abort(); /* peek and claim disagree on where the body starts */
	for (const char *p = en->line; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			abort(); /* the first line must be printable */
	return 0;
}

/* dead/ after a burial: the file has our reason first; remove it. */
static int
peeked_dead(const struct spool_entry *en, void *arg)
{
	(void)arg;
	if (strcmp(en->reason, "fuzz") != 0 || strcmp(en->id, "01M8026ZVVR2V8W4T6Y1Z3B5C7") != 0)
		abort();
	if (unlink(en->path) != 0)
		fuzz_die("unlink dead letter", NULL);
	return 0;
}

/* dead/ after the claimer buried a file whose header block does not end
 * (spool-layout.md 3.1): its reason says so; remove it. */
static int
peeked_unparsable(const struct spool_entry *en, void *arg)
{
	(void)arg;
	if (!strstr(en->reason, "header block") || strcmp(en->id, "01M8026ZVVR2V8W4T6Y1Z3B5C7") != 0)
		abort();
	if (unlink(en->path) != 0)
		fuzz_die("unlink dead letter", NULL);
	return 0;
}

/* The body through spool_msg_read, in odd-sized pieces. */
static void
check_read(spool_msg *m, const uint8_t *body)
{
	struct spool_err e = {0};
	size_t got = 0;
	ssize_t r;
	while ((r = spool_msg_read(m, buf + got, 1 + got % 7001, &e)) > 0)
		if ((got += (size_t)r) > (size_t)want_body)
			abort();
	if (r < 0)
		fuzz_die("spool_msg_read", &e);
	if (got != (size_t)want_body || memcmp(buf, body, got) != 0)
		abort(); /* spool_msg_read does not give the body */
	int fd = spool_msg_body_fd(m, &e);
	if (fd < 0)
		fuzz_die("spool_msg_body_fd", &e);
	got = 0;
	while ((r = read(fd, buf + got, insize + 1 - got)) > 0)
		got += (size_t)r;
	close(fd);
	if (got != (size_t)want_body || memcmp(buf, body, got) != 0)
		abort(); /* the handler's stdin is not the body */
}

/* Every non-empty line of the block, in order (a NUL cuts a line short). */
static void
check_headers(char *const *h, const uint8_t *body)
{
	const char *p = (const char *)in, *end = (const char *)body - 1;
	size_t k = 0;
	for (; p < end; p++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			nl = end;
		if (nl > p) {
			size_t len = strnlen(p, (size_t)(nl - p));
			if (!h[k] || strlen(h[k]) != len || memcmp(h[k], p, len) != 0)
				abort();
			k++;
		}
		p = nl;
	}
	if (h[k])
		abort(); /* more headers than lines */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	spool_msg *m;
	char path[4200];

	fuzz_restart_alarm();
	in = data, insize = size;
	snprintf(path, sizeof path, "%s/new/" NAME, spool_queue_path(q));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0 || write_all(fd, data, size) != 0)
		fuzz_die(path, NULL);
	close(fd);

	/* where the body starts, by the rule of spool-layout.md section 5 */
	const uint8_t *body = NULL;
	if (size && data[0] == '\n')
		body = data + 1;
	else if ((body = memmem(data, size < HEAD_LIMIT ? size : HEAD_LIMIT, "\n\n", 2)))
		body += 2;
	want_body = body ? (long)(size - (size_t)(body - data)) : -1;

	if (spool_list(q, 1u << SPOOL_READY, SPOOL_LIST_SIZE | SPOOL_LIST_PEEK, peeked_new, NULL,
	               &e) != 0)
		fuzz_die("list new/", &e);
	int got = spool_claim(q, &m, NULL, &e);
	if (got < 0)
		fuzz_die("claim", &e);
	if (!body) {
		/* no end to its header block: buried by the claimer, not given */
		if (got != 0)
			abort();
		if (spool_list(q, 1u << SPOOL_DEAD, SPOOL_LIST_PEEK, peeked_unparsable, NULL, &e) != 0)
			fuzz_die("list dead/", &e);
		return 0;
	}
	if (got != 1)
		abort(); /* a file whose header block ends was not given */
	if (!(buf = malloc(size + 1)))
		abort();

	char *const *h = spool_msg_headers(m, &e);
	int bury = !h;
	if (!h) {
		if (body || e.code != EX_DATAERR)
			abort(); /* refused a block that ends, or for the wrong reason */
	} else {
		if (!body)
			abort(); /* accepted a block that does not end */
		check_headers(h, body);
		check_read(m, body);
		bury = size && data[size / 2] % 8 == 0;
	}
	if (bury) {
		if (spool_bury(m, "fuzz", NULL, &e) != 0)
			fuzz_die("bury", &e);
		if (spool_list(q, 1u << SPOOL_DEAD, SPOOL_LIST_PEEK, peeked_dead, NULL, &e) != 0)
			fuzz_die("list dead/", &e);
	} else if (spool_ack(m, &e) != 0) {
		fuzz_die("ack", &e);
	}
	spool_msg_free(m);
	free(buf);
	return 0;
}
