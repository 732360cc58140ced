/* SPDX-License-Identifier: MIT */
/*
 * fuzz_config.c: the queue config file (config.c).  Each input is written
 * to QUEUE/config of one throwaway spool and read with spool_queue_reload,
 * the path every command takes when it opens a queue.  A bad file must fail
 * with EX_CONFIG (78), never crash; a file it accepts must give settings
 * the library can use, so the retry delay of every attempt is computed too.
 */
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#include "fuzz.h"

static spool_queue *q;
static char path[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
quiet(const char *msg)
{
	(void)msg;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	q = fuzz_queue("q");
	snprintf(path, sizeof path, "%s/config", spool_queue_path(q));
	spool_warn_hook = quiet; /* the unknown-key path formats a message */
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

	if (fd < 0 || write_all(fd, data, size) != 0)
		fuzz_die(path, NULL);
	close(fd);
	if (spool_queue_reload(q, &e) != 0) {
		if (e.code != EX_CONFIG)
			fuzz_die("reload failed, but not with EX_CONFIG", &e);
		return 0;
	}
	const struct spool_config *c = spool_queue_config(q);
	if (c->lease < 0 || c->max_attempts < 0 || c->max_attempts > 1000000 ||
	    c->backoff_first < 0 || c->backoff_cap < c->backoff_first || c->retention < 0 ||
	    c->keep_acked < 0 || c->max_length < 0 || c->min_free < 0 || c->dedup_window < 0 ||
	    c->max_size < 0 || c->tmp_grace < 0)
		abort(); /* accepted, but out of range */
	/* what a nack or a lease taken back computes from it (settle.c) */
	for (unsigned a = 1; a <= 70; a++)
		if (backoff_delay(c, a) < 0)
			abort();
	return 0;
}
