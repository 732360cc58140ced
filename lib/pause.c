/* SPDX-License-Identifier: MIT */
/*
 * pause.c: the pause marker QUEUE/paused (spool-layout.md 3.2).  While it
 * exists, senders still send but consumers claim nothing: mq-recv exits
 * EX_PAUSED (mq-recv -f waits), mq-relayd holds the queue's consumers and
 * forwards.  The marker is written in tmp/ and renamed into place, so that a
 * watcher (watch.c) sees it appear whole, and removed by one unlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

#define PAUSED "paused"

int
spool_queue_paused(spool_queue *q)
{
	struct stat st;
	return fstatat(q->fd, PAUSED, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
spool_queue_pause(spool_queue *q, struct spool_err *e)
{
	char tmp[NAME_LEN], id[ULID_LEN + 1], when[32], text[256];
	if (spool_queue_paused(q))
		return 0; /* keep who paused it first, and when */
	ulid_new(id);
	snprintf(tmp, sizeof tmp, "%s.paused", id);
	int n = snprintf(text, sizeof text, "paused by uid %u (pid %ld) at %s\n",
	                 (unsigned)geteuid(), (long)getpid(),
	                 spool_fmt_time(spool_now(), when, sizeof when));
	int fd = spool_open_file(q->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0666, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "create %s/tmp/%s", q->path, tmp);
	if (write_all(fd, text, (size_t)n) != 0 || fsync(fd) != 0) {
		int err = errno;
		close(fd);
		unlinkat(q->tmpfd, tmp, 0);
		return spool_fail_errno(e, err, "write %s/tmp/%s", q->path, tmp);
	}
	close(fd);
	/* a second mq-pause may have won: either marker says the same */
	if (renameat(q->tmpfd, tmp, q->fd, PAUSED) != 0) {
		int err = errno;
		unlinkat(q->tmpfd, tmp, 0);
		return spool_fail_errno(e, err, "rename tmp/%s to %s/%s", tmp, q->path, PAUSED);
	}
	if (fsync_dir(q->fd) != 0)
		return spool_fail_errno(e, errno, "fsync %s", q->path);
	return 0;
}

int
spool_queue_resume(spool_queue *q, struct spool_err *e)
{
	if (unlinkat(q->fd, PAUSED, 0) != 0 && errno != ENOENT)
		return spool_fail_errno(e, errno, "remove %s/%s", q->path, PAUSED);
	if (fsync_dir(q->fd) != 0)
		return spool_fail_errno(e, errno, "fsync %s", q->path);
	return 0;
}
