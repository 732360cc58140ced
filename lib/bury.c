/* SPDX-License-Identifier: MIT */
/*
 * bury.c: burial, the state change into dead/ (spool-layout.md, "State
 * changes"): of a claimed message its consumer gave up on or that ran out
 * of attempts, and of one taken from new/ (expired) or from someone else's
 * cur/ (a lease past max-attempts).  A dead letter is a copy with the
 * reasons on top, so a burial is the one state change that writes a file
 * rather than making one rename or unlink.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "spool_priv.h"

#define TAKE_LEASE (60 * 1000) /* how long a burial may take before others may retry it */

/* Take a message for burial from new/ (expired) or cur/ (lease expired):
 * 1 buried, 0 gone (someone else was faster), -1. */
int
bury_from(spool_queue *q, int fromfd, const char *from, const struct spool_name *n,
          const char *reason, const char *status, struct spool_err *e)
{
	struct spool_name cn = *n;
	spool_msg *m = NULL;
	cn.t = spool_now() + TAKE_LEASE;
	int r = move_to_cur(q, fromfd, from, &cn, &m, e);
	if (r <= 0)
		return r;
	r = spool_bury(m, reason, status, e);
	spool_msg_free(m);
	return r == 0 ? 1 : -1;
}

/* Copy all of src into dst from offset 0. */
static int
copy_fd(int src, int dst)
{
	off_t off = 0;
	for (;;) {
		ssize_t r = copy_file_range(src, &off, dst, NULL, 1 << 30, 0);
		if (r == 0)
			return 0;
		if (r > 0 || errno == EINTR) /* mq-recv's signal handlers do not restart */
			continue;
		if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
			return -1;
		char buf[65536];
		while ((r = pread(src, buf, sizeof buf, off)) > 0 || (r < 0 && errno == EINTR)) {
			if (r < 0)
				continue;
			if (write_all(dst, buf, (size_t)r) != 0)
				return -1;
			off += r;
		}
		return r < 0 ? -1 : 0;
	}
}

/* A reason as one header value: control characters become spaces. */
static void
oneline(char *dst, size_t len, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ? ' ' : src[i];
	dst[i] = '\0';
}

/*
 * The dead letter is a new file: the reasons, then the message as it was.
 * Written in tmp/, synced, renamed into dead/, and only then is the claim in
 * cur/ removed, so a crash leaves the message in cur/ (retried) or in both
 * (a duplicate dead letter), never nowhere.
 */
int
spool_bury(spool_msg *m, const char *reason, const char *status, struct spool_err *e)
{
	spool_queue *q = m->q;
	int64_t now = spool_now();
	char date[40], hdr[1400 + REASON_TAIL_OUT + 512], tmpname[NAME_LEN + 8], to[NAME_LEN];
	int deadfd, fd = -1;

	/* own it for the time the copy takes, so no reaper buries it twice */
	if (spool_extend(m, TAKE_LEASE, e) != 0)
		return -1;
	if ((deadfd = subdir_fd(q, "dead", e)) < 0)
		return -1;
	/* the copy is of the whole file: a header block that cannot be parsed
	 * (the very reason some messages end here) must not stop it */
	struct spool_err oe = {0};
	if (msg_open(m, &oe) != 0 && m->fd < 0) {
		/* not a file, or one we may not read: set aside as it is */
		int r = msg_set_aside(m, errno, e);
		if (r != 0)
			return r > 0 ? 0 : -1;
		if (e)
			*e = oe;
		return -1;
	}
	struct spool_name dn = m->n;
	dn.t = now;
	name_format(to, sizeof to, &dn);
	snprintf(tmpname, sizeof tmpname, "%s.dead", to);
	char why[901], st[201];
	oneline(why, sizeof why, reason);
	oneline(st, sizeof st, status);
	int n = snprintf(hdr, sizeof hdr, "Dead-Reason: %s\nDead-Date: %s\nDead-Attempts: %u\n", why,
	                 spool_fmt_time(now, date, sizeof date), m->n.attempts);
	if (*st)
		n += snprintf(hdr + n, sizeof hdr - (size_t)n, "Dead-Status: %s\n", st);
	/* the handler's last words, one header a line (6.13) */
	n += (int)reason_header_lines("Dead-Stderr", m->stderr_tail, hdr + n, sizeof hdr - (size_t)n);
	fd = spool_open_file(q->tmpfd, tmpname, O_WRONLY | O_CREAT | O_TRUNC, 0666, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "create %s/tmp/%s", q->path, tmpname);
	if (write_all(fd, hdr, (size_t)n) != 0 || copy_fd(m->fd, fd) != 0 || fdatasync(fd) != 0) {
		spool_fail_errno(e, errno, "write %s/tmp/%s", q->path, tmpname);
		goto fail;
	}
	close(fd);
	fd = -1;
	while (renameat2(q->tmpfd, tmpname, deadfd, to, RENAME_NOREPLACE) != 0) {
		if (errno != EEXIST) {
			spool_fail_errno(e, errno, "rename tmp/%s to dead/%s", tmpname, to);
			goto fail;
		}
		dn.t++; /* buried twice in one millisecond (replayed in between) */
		name_format(to, sizeof to, &dn);
	}
	if (fsync_dir(deadfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/dead", q->path);
	if (unlinkat(q->curfd, m->name, 0) != 0 && errno != ENOENT)
		return spool_fail_errno(e, errno, "unlink cur/%s", m->name);
	m->done = true;
	reason_remove(q, m->n.id); /* its last failure is in the dead letter now */
	key_advance(m);            /* dead, it holds its key no longer */
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	unlinkat(q->tmpfd, tmpname, 0);
	return -1;
}
