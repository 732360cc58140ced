/* SPDX-License-Identifier: MIT */
/*
 * corrupt.c: what a spool holds that cannot be delivered (spool-layout.md
 * 3.1).  A spool holds regular files only; every file is opened through
 * spool_open_file, which never follows a link and never blocks.  What a
 * claimer finds under a message name that is not a regular file (a link, a
 * FIFO, a device, a socket, a directory) is moved aside into QUEUE/corrupt/
 * by a rename, which moves the entry itself and never what a link points
 * to, as Postfix does with its corrupt/ queue.  A regular file that cannot
 * be parsed is buried, and one that cannot be read (EACCES) is renamed into
 * dead/ as it is: a rename needs no permission on the file.  Each of these
 * is reported through spool_warn_hook, and the consumer goes on.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

static void warnf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
warnf(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	if (!spool_warn_hook)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	spool_warn_hook(msg);
}

/* What dirfd/name is, for a person: "a FIFO", "a symbolic link"... */
static const char *
kind_of(int dirfd, const char *name)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return "gone";
	switch (st.st_mode & S_IFMT) {
	case S_IFREG: return "a regular file";
	case S_IFLNK: return "a symbolic link";
	case S_IFIFO: return "a FIFO";
	case S_IFSOCK: return "a socket";
	case S_IFCHR: return "a character device";
	case S_IFBLK: return "a block device";
	case S_IFDIR: return "a directory";
	default: return "not a regular file";
	}
}

/* QUEUE/corrupt/, made (durably) when missing: an fd to close, or -1. */
static int
corrupt_dir(spool_queue *q, struct spool_err *e)
{
	int fd = openat(q->fd, "corrupt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(q->fd, "corrupt", 0777) == 0)
			fsync_dir(q->fd);
		else if (errno != EEXIST)
			return spool_fail_errno(e, errno, "create %s/corrupt", q->path);
		fd = openat(q->fd, "corrupt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s/corrupt", q->path);
	return fd;
}

/* Rename fromfd/from to tofd/NOW.ID.A[.E], never replacing anything (NOW
 * raised by 1 ms until the name is free); to gets the name.  1 moved, 0
 * gone (someone else moved it), -1. */
static int
move_named(int fromfd, const char *from, int tofd, const struct spool_name *n, char *to,
           size_t len)
{
	struct spool_name dn = *n;
	dn.t = spool_now();
	name_format(to, len, &dn);
	while (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) != 0) {
		if (errno == ENOENT)
			return 0;
		if (errno != EEXIST)
			return -1;
		dn.t++;
		name_format(to, len, &dn);
	}
	return 1;
}

/* fromfd/from (a message name n, in dir sub) is not a regular file: into
 * corrupt/.  1 moved, 0 gone, -1. */
static int
to_corrupt(spool_queue *q, int fromfd, const char *sub, const char *from,
           const struct spool_name *n, struct spool_err *e)
{
	char to[NAME_LEN];
	const char *kind = kind_of(fromfd, from);
	int fd = corrupt_dir(q, e);
	if (fd < 0)
		return -1;
	int r = move_named(fromfd, from, fd, n, to, sizeof to);
	if (r < 0)
		spool_fail_errno(e, errno, "rename %s/%s to corrupt/%s", sub, from, to);
	close(fd);
	if (r > 0)
		warnf("%s: %s/%s/%s is %s, not a message file: moved to corrupt/%s, not delivered",
		      q->name, q->path, sub, from, kind, to);
	return r;
}

int
msg_set_aside(spool_msg *m, int err, struct spool_err *e)
{
	spool_queue *q = m->q;
	char to[NAME_LEN];
	int r;
	if (err == SPOOL_ENOTREG) {
		r = to_corrupt(q, q->curfd, "cur", m->name, &m->n, e);
	} else if (err == EACCES || err == EPERM) {
		int deadfd = subdir_fd(q, "dead", e);
		if (deadfd < 0)
			return -1;
		r = move_named(q->curfd, m->name, deadfd, &m->n, to, sizeof to);
		if (r < 0)
			return spool_fail_errno(e, errno, "rename cur/%s to dead/%s", m->name, to);
		if (r > 0 && fsync_dir(deadfd) != 0)
			return spool_fail_errno(e, errno, "fsync %s/dead", q->path);
		if (r > 0)
			warnf("%s: %s: cannot read %s: %s: moved to dead/%s as it is, without "
			      "Dead-* headers", q->name, m->n.id, m->path, strerror(err), to);
	} else {
		return 0;
	}
	if (r == 0)
		return spool_fail(e, EX_NOTFOUND, "%s: lease lost: someone else may have it now",
		                  m->n.id);
	if (r < 0)
		return -1;
	m->done = true;
	return 1;
}

int
claim_check(spool_msg *m, struct spool_err *e)
{
	struct spool_err oe = {0};
	if (msg_open(m, &oe) == 0)
		return 1;
	int err = errno;
	if (err == ENOENT)
		return 0; /* gone already: someone took it back */
	if (err != EBADMSG && err != SPOOL_ENOTREG && err != EACCES && err != EPERM) {
		if (e)
			*e = oe; /* left claimed: its lease brings it back, counted */
		return -1;
	}
	if (err != EBADMSG) /* held already: no need to take it as a burial does */
		return msg_set_aside(m, err, e) > 0 ? 0 : -1;
	char why[64];
	snprintf(why, sizeof why, "no end of the header block within %d KiB", HEAD_LIMIT / 1024);
	if (spool_bury(m, why, NULL, e) != 0)
		return -1;
	warnf("%s: %s: %s: moved to dead/, not delivered", m->q->name, m->n.id, why);
	return 0;
}

long
repair_corrupt(spool_queue *q, struct spool_err *e)
{
	struct name_list odd = {0};
	struct spool_name n;
	long moved = 0;
	int fd = openat(q->newfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return spool_fail_errno(e, errno, "read %s/new", q->path);
	}
	/* the type is in the directory entry on most file systems: no stat */
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (de->d_name[0] == '.' || de->d_type == DT_REG || name_parse(de->d_name, &n) != 0)
			continue;
		if (de->d_type == DT_UNKNOWN &&
		    (fstatat(q->newfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || S_ISREG(st.st_mode)))
			continue;
		list_insert(&odd, de->d_name);
	}
	closedir(d);
	for (size_t i = 0; i < odd.n; i++)
		if (name_parse(odd.v[i], &n) == 0 && to_corrupt(q, q->newfd, "new", odd.v[i], &n, e) > 0)
			moved++;
	list_clear(&odd);
	return moved;
}

char **
spool_corrupt_list(spool_queue *q, struct spool_err *e)
{
	struct name_list l = {0};
	char **v;
	int fd = openat(q->fd, "corrupt", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT)
		return spool_fail_errno(e, errno, "open %s/corrupt", q->path), NULL;
	if (fd >= 0 && list_scan(&l, fd, e) != 0) {
		close(fd);
		return NULL;
	}
	if (fd >= 0)
		close(fd);
	if (!(v = calloc(l.n + 1, sizeof *v))) {
		list_clear(&l);
		return spool_fail_errno(e, ENOMEM, "read %s/corrupt", q->path), NULL;
	}
	if (l.n) /* no corrupt/: l.v is NULL, which memcpy may not be given */
		memcpy(v, l.v, l.n * sizeof *v); /* the names change hands */
	if (l.n > 1)
		qsort(v, l.n, sizeof *v, strv_cmp);
	free(l.v);
	return v;
}
