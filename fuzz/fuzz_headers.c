/* SPDX-License-Identifier: MIT */
/*
 * fuzz_headers.c: what mq-send takes from its command line into a message
 * file: the -H 'Name: value' headers (spool_headers_check) and the --id key
 * (spool_key_check).  The input is fields, each ended by a NUL byte (the
 * last by the end of the input): the first is the key (empty: no key), each
 * further one a header.  Whatever the checks refuse must be
 * EX_USAGE (64); whatever they accept is sent to a throwaway queue, claimed
 * back, and must come out of spool_msg_headers as it went in: Id, Date, the
 * key as one Dedup-Key header, then the headers, each as "Name: value".  A value
 * that could change the header block (a newline: a header or body of its
 * own) is a finding.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz.h"

#define MAXH 32

static spool_queue *q;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	q = fuzz_queue("h");
	/* a key must not make the next input a duplicate */
	struct spool_config c = *spool_queue_config(q);
	c.dedup_window = 0;
	spool_queue_set_config(q, &c);
	return 0;
}

/* The dedup markers in ids/: one per key, removed so they do not pile up. */
static void
clear_ids(void)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/ids", spool_queue_path(q));
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	struct dirent *de;
	if (!d)
		return;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			unlinkat(fd, de->d_name, 0);
	closedir(d);
}

/* "Name: value" as mq-send writes it: blanks after the colon dropped. */
static int
same_header(const char *got, const char *given)
{
	const char *colon = strchr(given, ':'), *v = colon + 1;
	size_t n = (size_t)(colon - given);
	while (*v == ' ' || *v == '\t')
		v++;
	return strncmp(got, given, n + 1) == 0 && got[n + 1] == ' ' && strcmp(got + n + 2, v) == 0;
}

static void
send_and_check(const char *key, const char *const *hdrs, size_t nh)
{
	struct spool_err e = {0};
	struct spool_send_opts o = {.headers = hdrs, .key = key, .nosync = 1};
	spool_batch *b = spool_batch_new(q, &o, &e);
	spool_msg *m;

	if (!b || spool_batch_begin(b, &e) != 0 || spool_batch_write(b, "body\n", 5, &e) != 0 ||
	    spool_batch_end(b, &e) != 0 || spool_batch_commit(b, NULL, &e) != 1)
		fuzz_die("send", &e);
	spool_batch_free(b);
	if (spool_claim(q, &m, NULL, &e) != 1)
		fuzz_die("claim", &e);
	char *const *h = spool_msg_headers(m, &e);
	if (!h)
		abort(); /* what we sent cannot be read */
	size_t k = 0;
	if (!h[k] || strncmp(h[k++], "Id: ", 4) != 0 || !h[k] || strncmp(h[k++], "Date: ", 6) != 0)
		abort();
	if (key && (!h[k] || strncmp(h[k], "Dedup-Key: ", 11) != 0 || strcmp(h[k++] + 11, key) != 0))
		abort(); /* the key did not come back as one Key header */
	for (size_t i = 0; i < nh; i++)
		if (!h[k] || !same_header(h[k++], hdrs[i]))
			abort(); /* a header did not come back as given */
	if (h[k])
		abort(); /* a header came from nowhere */
	char body[8];
	if (spool_msg_read(m, body, sizeof body, &e) != 5 || memcmp(body, "body\n", 5) != 0)
		abort(); /* the body moved */
	if (spool_ack(m, &e) != 0)
		fuzz_die("ack", &e);
	spool_msg_free(m);
	if (key)
		clear_ids();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	const char *hdrs[MAXH + 1];
	size_t nh = 0;
	char *s = malloc(size + 1);

	fuzz_restart_alarm();
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	/* fields end with NUL bytes, so a key or value may hold a newline */
	char *key = s, *end = s + size;
	for (char *p = s + strlen(s) + 1; p < end && nh < MAXH; p += strlen(p) + 1)
		hdrs[nh++] = p;
	hdrs[nh] = NULL;
	if (!*key)
		key = NULL;
	if ((key && spool_key_check(key, &e) != 0) || spool_headers_check(hdrs, &e) != 0) {
		if (e.code != EX_USAGE)
			abort();
	} else {
		send_and_check(key, hdrs, nh);
	}
	free(s);
	return 0;
}
