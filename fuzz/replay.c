/* SPDX-License-Identifier: MIT */
/*
 * replay.c: a harness without libFuzzer.  Linked with one fuzz_TARGET.c by
 * the normal compiler (make fuzz-corpus), it hands each file named on the
 * command line, or each file of a directory named there, to
 * LLVMFuzzerTestOneInput once, in a buffer of exactly its size, as
 * libFuzzer replays a corpus; LLVMFuzzerInitialize first where the harness
 * has one.  A harness that finds something aborts, so the exit status says
 * it; under make check's ASan and UBSan build they watch every seed too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *prog = "replay";

static void
die(const char *what, const char *path)
{
	fprintf(stderr, "%s: %s: %s\n", prog, path, what ? what : strerror(errno));
	exit(1);
}

static void
one(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0)
		die(NULL, path);
	if (!S_ISREG(st.st_mode))
		die("not a regular file", path);
	size_t size = (size_t)st.st_size;
	/* exactly its size: an over-read is an ASan finding, as under libFuzzer */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		die(NULL, path);
	for (size_t off = 0; off < size;) {
		ssize_t r = read(fd, buf + off, size - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die(r < 0 ? NULL : "shorter than it was", path);
		off += (size_t)r;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, size);
	free(buf);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int
visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int
main(int argc, char **argv)
{
	long n = 0;
	const char *slash = strrchr(argv[0], '/');
	prog = slash ? slash + 1 : argv[0];
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", prog);
		return 64;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) != 0)
			die(NULL, argv[i]);
		if (!S_ISDIR(st.st_mode)) {
			one(argv[i]);
			n++;
			continue;
		}
		struct dirent **v;
		int k = scandir(argv[i], &v, visible, by_name);
		if (k < 0)
			die(NULL, argv[i]);
		for (int j = 0; j < k; j++) {
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", argv[i], v[j]->d_name);
			one(path);
			n++;
			free(v[j]);
		}
		free(v);
	}
	printf("%s: %ld inputs, nothing found\n", prog, n);
	return 0;
}
