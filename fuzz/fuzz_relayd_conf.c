/* SPDX-License-Identifier: MIT */
/*
 * fuzz_relayd_conf.c: mq-relayd's configuration file, read by conf_read()
 * of relayd/conf.c, which fuzz/run links in beside the library.
 * Each input is written to one temporary file and read.  A bad file must be
 * EX_CONFIG (78) with no leak (conf_read frees what it built); a good one is
 * freed the way a reload does.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <stdlib.h>
#include <string.h>

#include "relayd.h"
#include "spool_priv.h" /* write_all */

static char path[4096];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *tmp = getenv("TMPDIR");
	snprintf(path, sizeof path, "%s/relayd.conf.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	int fd = mkstemp(path);
	if (fd < 0)
		abort();
	close(fd);
	prog = "mq-relayd";
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool_err e = {0};
	struct conf c;
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

	if (fd < 0 || write_all(fd, data, size) != 0)
		abort();
	close(fd);
	if (conf_read(path, &c, &e) != 0) {
		if (e.code != EX_CONFIG)
			abort();
		return 0;
	}
	for (struct consumer *k = c.consumers; k; k = k->next) {
		if (!spool_queue_name_ok(k->queue) || k->concurrency < 1 ||
		    (k->kind == CONSUME_EXEC ? !k->cmd || !*k->cmd : !k->url || !k->to))
			abort();
		/* the overrides are "key\0value\0" pairs, each one a valid setting */
		struct spool_config cfg = {0};
		const char *p = k->overrides;
		for (size_t i = 0; i < k->noverrides; i++) {
			const char *v = p + strlen(p) + 1;
			if (spool_config_set(&cfg, p, v) != 0)
				abort();
			p = v + strlen(v) + 1;
		}
	}
	conf_free(&c);
	return 0;
}
