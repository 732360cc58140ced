/* SPDX-License-Identifier: MIT */
/*
 * fuzz_import.c: a message file as a relay peer sends it (lib/import.c),
 * the receiver's outside input.  The first byte chooses how the rest is cut
 * into pieces (the network delivers it in any chunks); the rest is the file.
 * It is imported under a fixed id with this receiver's Hop name "me" and a
 * sender "peer", committed, and when it was accepted the stored file must
 * be the input's header block, the Hop lines the import adds, the blank line
 * and the input's body, byte for byte; a refusal must leave tmp/ empty.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"

#define ID "01M8026ZVVR2V8W4T6Y1Z3B5C7"

static spool_queue *q;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	q = fuzz_queue("r");
	struct spool_config c = *spool_queue_config(q);
	c.max_size = 1 << 20;
	c.dedup_window = 0; /* every input imports the same id afresh */
	spool_queue_set_config(q, &c);
	return 0;
}

static size_t
count_dir(int fd)
{
	struct name_list l = {0};
	if (list_scan(&l, fd, NULL) != 0)
		abort();
	size_t n = l.n;
	list_clear(&l);
	return n;
}

/* Remove what the input left in new/, for the next one. */
static void
clean(void)
{
	struct name_list l = {0};
	if (list_scan(&l, q->newfd, NULL) != 0)
		abort();
	for (size_t i = 0; i < l.n; i++)
		unlinkat(q->newfd, l.v[i], 0);
	list_clear(&l);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	if (size < 1)
		return 0;
	size_t chunk = (size_t)data[0] % 17 + 1;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	spool_import *im = spool_import_new(q, ID, "me", "peer", &e);
	if (!im)
		fuzz_die("import_new", &e);
	int rc = 0;
	for (size_t off = 0; off < n && rc == 0; off += chunk)
		rc = spool_import_write(im, p + off, n - off < chunk ? n - off : chunk, &e);
	if (rc == 0)
		rc = spool_import_end(im, "sha-256=:x:", &e);
	if (rc != 0) {
		if (e.code != EX_DATAERR && e.code != EX_PROTOCOL)
			abort();
		spool_import_free(im);
		if (count_dir(q->tmpfd) != 0) /* a refusal leaves nothing */
			abort();
		return 0;
	}
	spool_import_commit(&im, 1);
	if (spool_import_result(im, &e) != 1)
		fuzz_die("commit", &e);
	spool_import_free(im);
	/* what is stored: the input's header block, the Hop lines, its body */
	const char *in = (const char *)p;
	const char *end = n && in[0] == '\n' ? in + 1 : memmem(in, n, "\n\n", 2);
	if (!end || end == in + 1) /* a file without headers is refused above */
		abort();
	size_t hlen = (size_t)(end - in) + 1; /* through the last header's newline */
	struct name_list l = {0};
	if (list_scan(&l, q->newfd, NULL) != 0 || l.n != 1)
		abort();
	int fd = openat(q->newfd, l.v[0], O_RDONLY);
	list_clear(&l);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		abort();
	char *got = malloc((size_t)st.st_size + 1);
	if (!got || read(fd, got, (size_t)st.st_size) != st.st_size)
		abort();
	close(fd);
	/* the sender's Hop is added unless the file's last Hop is it already */
	bool peer_last = false;
	for (const char *line = in; line < in + hlen;) {
		const char *nl = memchr(line, '\n', (size_t)(in + hlen - line));
		if (nl - line > 4 && strncasecmp(line, "Hop:", 4) == 0) {
			const char *v = line + 4;
			while (*v == ' ')
				v++;
			peer_last = nl - v == 4 && memcmp(v, "peer", 4) == 0;
		}
		line = nl + 1;
	}
	const char *hops = peer_last ? "Hop: me\n\n" : "Hop: peer\nHop: me\n\n";
	size_t want = hlen + strlen(hops) + (n - hlen - 1);
	if ((size_t)st.st_size != want || memcmp(got, in, hlen) != 0 ||
	    memcmp(got + hlen, hops, strlen(hops)) != 0 ||
	    memcmp(got + hlen + strlen(hops), in + hlen + 1, n - hlen - 1) != 0)
		abort();
	free(got);
	clean();
	return 0;
}
