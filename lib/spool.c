/* SPDX-License-Identifier: MIT */
/*
 * spool.c: finding the spool root and opening (or creating) queues.  A queue
 * is a directory with tmp/, new/ and cur/; dead/, done/ and ids/ appear when
 * first needed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spool_priv.h"

/* fsync the directory that holds path (a new entry is durable only then). */
static int
fsync_parent(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	char *slash = strrchr(buf, '/');
	if (slash == buf)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(buf, ".");
	int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync_dir(fd);
	close(fd);
	return rc;
}

/* mkdir -p of the spool root; each directory made is made durable. */
static int
mkdirs(const char *path)
{
	char buf[PATH_MAX];
	if (strlen(path) >= sizeof buf)
		return errno = ENAMETOOLONG, -1;
	strcpy(buf, path);
	for (char *p = buf + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, 0777) == 0) {
			if (fsync_parent(buf) != 0)
				return -1;
		} else if (errno != EEXIST) {
			return -1;
		}
		if (!(*p = c))
			return 0;
	}
}

/* The names a queue directory may hold (spool-layout.md 3), dot names aside. */
static const char *const queue_entries[] = {
	"tmp", "new", "cur", "dead", "done", "ids", "received",
	"corrupt", "holders", "reasons", "keys", "config", "paused", NULL,
};

static int
isdir_at(int fd, const char *name)
{
	struct stat st;
	return fstatat(fd, name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

/* 1 if the directory sub of fd holds nothing but dot names, 0 if not. */
static int
dir_empty(int fd, const char *sub)
{
	int dfd = openat(fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	int rc = 1;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return 0;
	}
	for (struct dirent *de; rc && (de = readdir(d));)
		rc = de->d_name[0] == '.';
	closedir(d);
	return rc;
}

/* A directory is a queue (spool-layout.md 3) when it holds new/ and cur/, or
 * (made by hand, or being made) nothing but what a queue may hold, and more
 * than a tmp/: 2; or nothing at all (an empty tmp/ at most: being made): 1.
 * 0 when it is some other program's directory (one with files in a tmp/ and
 * nothing else too), -1 when it cannot be read. */
static int
queue_like(int fd)
{
	if (isdir_at(fd, "new") && isdir_at(fd, "cur"))
		return 2;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	int known = 1, seen = 0, sign = 0;
	for (struct dirent *de; known && (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		seen = 1, known = 0;
		for (const char *const *k = queue_entries; *k && !known; k++)
			known = strcmp(de->d_name, *k) == 0;
		if (known && strcmp(de->d_name, "tmp") != 0) /* tmp/ alone is anybody's */
			sign = 1;
	}
	closedir(d);
	int like = !known ? 0 : !seen ? 1 : sign ? 2 : 0;
	if (known && seen && !sign) /* a tmp/ only: a queue being made has nothing in it yet */
		like = dir_empty(fd, "tmp");
	/* Its maker may have gone on since the first look: a file lands in
	 * tmp/ only once new/ and cur/ are there, so look again before
	 * calling a queue being made another program's directory. */
	if (like == 0 && isdir_at(fd, "new") && isdir_at(fd, "cur"))
		like = 2;
	return like;
}

/* A directory is a spool (spool-layout.md 2) when it holds the marker
 * .spoolmq (2), or (a spool made before the marker, or by hand) holds a
 * queue that is not an empty directory, or nothing but empty directories
 * with queue names: 1 then, 0 when it is not a spool, -1 when it cannot be
 * read. */
static int
spool_like(int fd)
{
	struct stat st;
	if (fstatat(fd, SPOOL_MARKER, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
		return 2;
	int dfd = dup(fd);
	DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	rewinddir(d);
	/* a queue with something in it says spool; empty directories only when
	 * there is nothing else (mkdir -p SPOOL/QUEUE), not among other folders */
	int rc = 1;
	for (struct dirent *de; (de = readdir(d));) {
		/* lost+found: a spool that is a file system of its own */
		if (de->d_name[0] == '.' || strcmp(de->d_name, "lost+found") == 0)
			continue;
		int qfd = spool_queue_name_ok(de->d_name) ?
		          openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		int k = qfd < 0 ? 0 : queue_like(qfd);
		if (qfd >= 0)
			close(qfd);
		if (k == 2) {
			rc = 1;
			break;
		}
		if (k != 1)
			rc = 0;
	}
	closedir(d);
	return rc;
}

/* Write the marker that says fd is a spool; it may fail (a spool shared
 * read-only): a spool with a queue in it is one without it too. */
static void
mark_spool(int fd)
{
	static const char text[] = "spoolmq spool: see mq-spool(5)\n";
	int mfd = openat(fd, SPOOL_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
	if (mfd < 0)
		return;
	if (write_all(mfd, text, sizeof text - 1) != 0)
		(void)unlinkat(fd, SPOOL_MARKER, 0); /* an empty one is still a marker, but say it whole */
	close(mfd);
}

spool *
spool_open(const char *dir, int flags, struct spool_err *e)
{
	char dflt[PATH_MAX];
	int chain = 0; /* the default root: its missing parents are made too */
	if (!dir || !*dir)
		dir = getenv("MQ_SPOOL");
	if (!dir || !*dir) {
		chain = 1;
		const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
		if (geteuid() == 0)
			dir = "/var/spool/mq";
		else if (x && *x == '/')
			snprintf(dflt, sizeof dflt, "%s/mq", x), dir = dflt;
		else if (home && *home)
			snprintf(dflt, sizeof dflt, "%s/.local/state/mq", home), dir = dflt;
		else
			return spool_fail(e, EX_CONFIG, "no spool: set MQ_SPOOL or use -d"), NULL;
	}
	spool *sp = calloc(1, sizeof *sp);
	if (!sp)
		return spool_fail_errno(e, errno, "open spool"), NULL;
	/* open first: the spool nearly always exists, and mkdir costs a syscall a level */
	int made = 0;
	sp->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->fd < 0 && errno == ENOENT && (flags & SPOOL_CREATE)) {
		/* a -d or $MQ_SPOOL with a typo must not become a tree of directories:
		 * only the spool's own directory is made, in a parent that exists */
		if (chain ? mkdirs(dir) != 0 : mkdir(dir, 0777) != 0 && errno != EEXIST) {
			int err = errno;
			free(sp);
			if (err == ENOENT)
				return spool_fail(e, EX_CANTCREAT, "cannot create spool %s: its parent "
				                  "directory does not exist", dir), NULL;
			return spool_fail_errno(e, err, "create spool %s", dir), NULL;
		}
		if (!chain && fsync_parent(dir) != 0) {
			int err = errno;
			free(sp);
			return spool_fail_errno(e, err, "fsync the parent of %s", dir), NULL;
		}
		made = 1;
		sp->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (sp->fd < 0) {
		int err = errno;
		free(sp);
		if (err == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "spool %s does not exist", dir), NULL;
		if (err == ENOTDIR) /* 73 for whoever came to make it, 66 to read it */
			return spool_fail(e, flags & SPOOL_CREATE ? EX_CANTCREAT : EX_NOINPUT,
			                  "spool %s: not a directory", dir), NULL;
		return spool_fail_errno(e, err, "open spool %s", dir), NULL;
	}
	/* what is not a spool is not ours to read, and less to write into */
	int like = made ? 1 : spool_like(sp->fd);
	if (like <= 0) {
		int err = errno;
		close(sp->fd);
		free(sp);
		if (like < 0)
			return spool_fail_errno(e, err, "read spool %s", dir), NULL;
		return spool_fail(e, flags & SPOOL_CREATE ? EX_CANTCREAT : EX_NOINPUT,
		                  "%s is not a spool: it has no " SPOOL_MARKER " and no queue in it", dir),
		       NULL;
	}
	if ((flags & SPOOL_CREATE) && like == 1)
		mark_spool(sp->fd);
	/* an absolute path without . or .. components is already what realpath gives,
	 * but for symbolic links, which are as good a name */
	sp->root = dir[0] == '/' && !strstr(dir, "/.") && !strstr(dir, "//") ? strdup(dir) :
	                                                                       realpath(dir, NULL);
	if (sp->root && strlen(sp->root) > 1 && sp->root[strlen(sp->root) - 1] == '/')
		sp->root[strlen(sp->root) - 1] = '\0';
	if (!sp->root) {
		spool_fail_errno(e, errno, "resolve spool %s", dir);
		spool_close(sp);
		return NULL;
	}
	return sp;
}

void
spool_close(spool *sp)
{
	if (!sp)
		return;
	close(sp->fd);
	free(sp->root);
	free(sp);
}

const char *
spool_root(const spool *sp)
{
	return sp->root;
}

int
spool_queue_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 64 || *s == '.' || *s == '-')
		return 0;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

const char *
spool_printable(const char *s)
{
	static char buf[100];
	size_t k = 0;
	for (; *s && k + 5 < sizeof buf; s++)
		k += (size_t)((unsigned char)*s < 0x20 || *s == 0x7f ?
		              snprintf(buf + k, sizeof buf - k, "\\x%02x", (unsigned char)*s) :
		              (buf[k] = *s, 1));
	if (*s) /* k < sizeof buf - 1 here: "..." is cut rather than overrun */
		snprintf(buf + k, sizeof buf - k, "...");
	else
		buf[k] = '\0';
	return buf;
}

char **
spool_queues(spool *sp, struct spool_err *e)
{
	int fd = dup(sp->fd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		return spool_fail_errno(e, errno, "read spool %s", sp->root), NULL;
	}
	rewinddir(d);
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof *v);
	struct dirent *de;
	while (v && (de = readdir(d))) {
		if (!spool_queue_name_ok(de->d_name))
			continue;
		int qfd = openat(sp->fd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int like = qfd < 0 ? 0 : queue_like(qfd);
		if (qfd >= 0)
			close(qfd);
		if (like <= 0) /* a file, or another program's directory */
			continue;
		if (n + 2 > cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof *v);
			if (!nv) {
				spool_strv_free(v);
				v = NULL;
				break;
			}
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (v[n])
			v[++n] = NULL;
	}
	closedir(d);
	if (!v)
		return spool_fail_errno(e, ENOMEM, "read spool %s", sp->root), NULL;
	v[n] = NULL;
	qsort(v, n, sizeof *v, strv_cmp);
	return v;
}

void
spool_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

/*
 * A queue directory may exist without its subdirectories: made by an
 * operator for its config, or a producer is creating them right now.  They
 * are made here then, whoever opens the queue.
 */
static int
open_sub(spool_queue *q, const char *sub, struct spool_err *e)
{
	int fd = openat(q->fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && q->look)
		return -2; /* only looking: a missing one is empty */
	if (fd < 0 && errno == ENOENT) {
		if (mkdirat(q->fd, sub, 0777) == 0) {
			/* the new entry must survive a crash with what goes in it */
			if (fsync_dir(q->fd) != 0)
				return spool_fail_errno(e, errno, "fsync %s", q->path);
		} else if (errno != EEXIST) {
			return spool_fail_errno(e, errno, "create %s/%s", q->path, sub);
		}
		fd = openat(q->fd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s/%s", q->path, sub);
	return fd;
}

spool_queue *
spool_queue_open(spool *sp, const char *name, int flags, struct spool_err *e)
{
	if (!spool_queue_name_ok(name))
		return spool_fail(e, EX_USAGE,
		                  "bad queue name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(name)), NULL;
	spool_queue *q = calloc(1, sizeof *q);
	if (!q)
		return spool_fail_errno(e, errno, "open queue %s", name), NULL;
	q->sp = sp;
	q->fd = q->tmpfd = q->newfd = q->curfd = q->deadfd = q->donefd = q->holdfd = -1;
	q->keysfd = -1;
	strcpy(q->name, name);
	if (asprintf(&q->path, "%s/%s", sp->root, name) < 0) {
		q->path = NULL;
		goto oom;
	}
	int create = 0; /* made the queue directory just now */
	q->fd = openat(sp->fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->fd < 0 && errno == ENOENT && (flags & SPOOL_CREATE)) {
		if (mkdirat(sp->fd, name, 0777) == 0) {
			create = 1;
			if (fsync_dir(sp->fd) != 0) {
				spool_fail_errno(e, errno, "fsync %s", sp->root);
				goto fail;
			}
		} else if (errno != EEXIST) {
			spool_fail_errno(e, errno, "create queue %s", q->path);
			goto fail;
		}
		q->fd = openat(sp->fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (q->fd >= 0 && !create) {
		int like = queue_like(q->fd);
		if (like < 0) {
			spool_fail_errno(e, errno, "read queue %s", q->path);
			goto fail;
		}
		if (!like) { /* another program's directory: not a file is touched */
			spool_fail(e, flags & SPOOL_CREATE ? EX_CANTCREAT : EX_NOINPUT,
			           "queue %s: %s is a directory but not a queue: it has no new/ and cur/", name,
			           q->path);
			goto fail;
		}
	}
	if (q->fd < 0) {
		if (errno == ENOENT)
			spool_fail(e, EX_NOTFOUND, "queue %s: no such queue", name);
		else if (errno == ENOTDIR)
			spool_fail(e, flags & SPOOL_CREATE ? EX_CANTCREAT : EX_NOINPUT,
			           "queue %s: %s is not a directory", name, q->path);
		else
			spool_fail_errno(e, errno, "open queue %s", q->path);
		goto fail;
	}
	/* the config first: a bad one must leave the queue as it was */
	if (config_load(q, e) != 0)
		goto fail;
	/* new/ last: a consumer that sees new/ may rely on tmp/ and cur/ */
	q->look = (flags & SPOOL_LOOK) != 0;
	if ((q->tmpfd = open_sub(q, "tmp", e)) == -1 || (q->curfd = open_sub(q, "cur", e)) == -1 ||
	    (create && (q->deadfd = open_sub(q, "dead", e)) < 0) ||
	    (q->newfd = open_sub(q, "new", e)) == -1)
		goto fail;
	q->tmpfd = q->tmpfd < 0 ? -1 : q->tmpfd; /* -2: missing, and only looking */
	q->curfd = q->curfd < 0 ? -1 : q->curfd;
	q->newfd = q->newfd < 0 ? -1 : q->newfd;
	return q;
oom:
	spool_fail_errno(e, ENOMEM, "open queue %s", name);
fail:
	spool_queue_close(q);
	return NULL;
}

void
spool_queue_close(spool_queue *q)
{
	if (!q)
		return;
	key_close(q); /* before the holder: what it gives back was recorded */
	holder_close(q);
	int fds[] = {q->fd, q->tmpfd, q->newfd, q->curfd, q->deadfd, q->donefd};
	for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	list_clear(&q->ready);
	free(q->spare);
	free(q->path);
	free(q);
}

int
spool_queue_stale(spool_queue *q)
{
	struct stat a, b;
	char path[80];
	snprintf(path, sizeof path, "%s/new", q->name);
	if (fstatat(q->sp->fd, path, &a, 0) != 0 || fstat(q->newfd, &b) != 0)
		return 1;
	return a.st_ino != b.st_ino || a.st_dev != b.st_dev;
}

const char *
spool_queue_name(const spool_queue *q)
{
	return q->name;
}

const char *
spool_queue_path(const spool_queue *q)
{
	return q->path;
}

const struct spool_config *
spool_queue_config(const spool_queue *q)
{
	return &q->cfg;
}

/* flock(QUEUE/.lock), the one lock (spool-layout.md section 10): an fd to
 * close to release it, or -1. */
int
queue_lock(spool_queue *q, struct spool_err *e)
{
	int fd = spool_open_file(q->fd, ".lock", O_RDWR | O_CREAT, 0666, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "open %s/.lock", q->path);
	while (flock(fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			close(fd);
			return spool_fail_errno(e, errno, "lock %s/.lock", q->path);
		}
	return fd;
}

/* dead/ and done/ exist only once something went there. */
int
subdir_fd(spool_queue *q, const char *which, struct spool_err *e)
{
	int *fdp = strcmp(which, "dead") == 0 ? &q->deadfd : &q->donefd;
	if (*fdp < 0)
		*fdp = open_sub(q, which, e);
	return *fdp;
}
