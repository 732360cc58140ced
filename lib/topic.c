/* SPDX-License-Identifier: MIT */
/*
 * topic.c: publish/subscribe (spool-layout.md 15).  A topic is the directory
 * SPOOL/.topics/TOPIC holding one empty file per subscribed queue, so `ls`
 * shows its subscribers.  A message published to it is written and synced
 * once in the topic's staging directory .pub/, hard-linked into each
 * subscriber's tmp/, and then renamed into each new/ as a send would be.
 * The rename of the staged file from NAME to NAME.go is the commit point:
 * the repair undoes a publish that had not reached it (its links leave every
 * subscriber) and completes one that had (every link goes into new/).
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

#define TOPICS ".topics"
#define GO ".go" /* a staged message past its commit point */

struct spool_topic {
	spool *sp;
	char name[65];
	int fd;              /* .topics/NAME */
	int lockfd;          /* .topics/NAME/.lock, shared while we publish */
	spool_queue *stage;  /* .pub/ dressed as a queue whose tmp/ a batch writes */
	long missed;         /* subscribers that did not get a message, over all commits */
};

struct target {
	spool_queue *q;
	int lockfd, idsfd;   /* with --id or a max-length; -1 without */
	size_t linked;       /* messages of the batch linked into its tmp/ */
	bool keyed;          /* its marker is in tmp/NAME.key */
};

/* Names in dirfd that pass ok (and are of type want: DT_DIR or DT_REG),
 * sorted, NULL-terminated. */
static char **
names_of(int dirfd, bool dirs, struct spool_err *e)
{
	size_t n = 0, cap = 8;
	char **v = calloc(cap, sizeof *v);
	if (!v)
		return spool_fail_errno(e, ENOMEM, "list topics"), NULL;
	if (dirfd < 0)
		return v;
	int fd = dup(dirfd);
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d) {
		if (fd >= 0)
			close(fd);
		free(v);
		return spool_fail_errno(e, errno, "read topics"), NULL;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat st;
		if (!spool_queue_name_ok(de->d_name) ||
		    fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    (dirs ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)))
			continue;
		if (n + 2 > cap) {
			char **nv = realloc(v, (cap *= 2) * sizeof *v);
			if (!nv)
				break;
			v = nv;
		}
		if (!(v[n] = strdup(de->d_name)))
			break;
		v[++n] = NULL;
	}
	closedir(d);
	qsort(v, n, sizeof *v, strv_cmp);
	return v;
}

/* .topics itself, made durably if create. */
static int
topics_root_fd(spool *sp, bool create, struct spool_err *e)
{
	int fd = openat(sp->fd, TOPICS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(sp->fd, TOPICS, 0777) == 0 ? fsync_dir(sp->fd) != 0 : errno != EEXIST)
			return spool_fail_errno(e, errno, "create %s/" TOPICS, sp->root);
		fd = openat(sp->fd, TOPICS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (fd < 0 && errno == ENOENT)
		return spool_fail(e, EX_NOTFOUND, "no topics in %s", sp->root);
	return fd >= 0 ? fd : spool_fail_errno(e, errno, "open %s/" TOPICS, sp->root);
}

/* .topics/NAME, made durably (with .topics) if create. */
static int
topic_fd(spool *sp, const char *name, bool create, struct spool_err *e)
{
	char path[80];
	snprintf(path, sizeof path, TOPICS "/%s", name);
	int fd = openat(sp->fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0 || errno != ENOENT || !create) {
		if (fd < 0 && errno == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "no such topic %s", name), -1;
		return fd >= 0 ? fd : spool_fail_errno(e, errno, "open %s/%s", sp->root, path);
	}
	int up = topics_root_fd(sp, true, e);
	if (up < 0)
		return -1;
	int rc = mkdirat(up, name, 0777) == 0 ? fsync_dir(up) : errno == EEXIST ? 0 : -1;
	int err = errno;
	close(up);
	if (rc != 0)
		return spool_fail_errno(e, err, "create %s/%s", sp->root, path);
	fd = openat(sp->fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : spool_fail_errno(e, errno, "open %s/%s", sp->root, path);
}

/* A subdirectory of a topic (.pub, .kept): fd, or -1 (ENOENT when missing
 * and not create). */
static int
sub_fd(int tfd, const char *sub, bool create)
{
	int fd = openat(tfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(tfd, sub, 0777) == 0 ? fsync_dir(tfd) != 0 : errno != EEXIST)
			return -1;
		fd = openat(tfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return fd;
}

static int
topic_lock(int tfd, int how, const char *topic, struct spool_err *e)
{
	int fd = spool_open_file(tfd, ".lock", O_RDWR | O_CREAT, 0666, NULL);
	if (fd < 0)
		return spool_fail_errno(e, errno, "open topic %s/.lock", topic);
	while (flock(fd, how) != 0) {
		if (errno == EINTR)
			continue;
		int err = errno;
		close(fd);
		errno = err;
		return err == EWOULDBLOCK ? -1 : spool_fail_errno(e, err, "lock topic %s/.lock", topic);
	}
	return fd;
}

static void
warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
warn(const char *fmt, ...)
{
	char buf[768];
	va_list ap;
	if (!spool_warn_hook)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	spool_warn_hook(buf);
}

char **
spool_topics(spool *sp, struct spool_err *e)
{
	struct spool_err ign;
	int fd = topics_root_fd(sp, false, &ign);
	if (fd < 0 && ign.code != EX_NOTFOUND)
		return spool_fail(e, ign.code, "%s", ign.msg), NULL;
	char **v = names_of(fd, true, e);
	if (fd >= 0)
		close(fd);
	return v;
}

char **
spool_topic_subscribers(spool *sp, const char *topic, struct spool_err *e)
{
	struct spool_err ign;
	if (!spool_topic_name_ok(topic))
		return spool_fail(e, EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(topic)), NULL;
	int fd = topic_fd(sp, topic, false, &ign);
	if (fd < 0 && ign.code != EX_NOTFOUND)
		return spool_fail(e, ign.code, "%s", ign.msg), NULL;
	char **v = names_of(fd, false, e);
	if (fd >= 0)
		close(fd);
	return v;
}

char **
spool_queue_topics(spool *sp, const char *queue, struct spool_err *e)
{
	char **all = spool_topics(sp, e);
	size_t k = 0;
	char path[160];
	struct stat st;
	for (size_t i = 0; all && all[i]; i++) {
		snprintf(path, sizeof path, TOPICS "/%s/%s", all[i], queue);
		if (fstatat(sp->fd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			all[k++] = all[i];
		else
			free(all[i]);
	}
	if (all)
		all[k] = NULL;
	return all;
}

static long
count_names(int tfd, const char *sub, bool *exists)
{
	int fd = sub_fd(tfd, sub, false);
	if (exists)
		*exists = fd >= 0;
	if (fd < 0)
		return 0;
	struct name_list l = {0};
	long n = 0;
	if (list_scan(&l, fd, NULL) == 0)
		n = (long)l.n;
	list_clear(&l);
	close(fd);
	return n;
}

int
spool_topic_info(spool *sp, const char *topic, struct spool_topic_info *ti, struct spool_err *e)
{
	*ti = (struct spool_topic_info){0};
	int fd = topic_fd(sp, topic, false, e);
	if (fd < 0)
		return -1;
	ti->kept = count_names(fd, ".kept", &ti->keep);
	ti->staged = count_names(fd, ".pub", NULL);
	close(fd);
	return 0;
}

long
spool_topic_copies(spool *sp, const char *topic, const char *queue)
{
	char path[96], line[160];
	snprintf(path, sizeof path, TOPICS "/%s/.copied", topic);
	int fd = spool_open_file(sp->fd, path, O_RDONLY, 0, NULL);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
	long n = 0;
	size_t ql = strlen(queue);
	if (!f) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (fgets(line, sizeof line, f))
		if (strncmp(line, queue, ql) == 0 && line[ql] == ' ')
			n++;
	fclose(f);
	return n;
}

/* A line "QUEUE ID" in the topic's record of copies (O_APPEND: whole lines). */
static void
note_copy(int tfd, const char *queue, const char *name)
{
	char line[160];
	int fd = spool_open_file(tfd, ".copied", O_WRONLY | O_APPEND | O_CREAT, 0666, NULL);
	if (fd < 0)
		return;
	int n = snprintf(line, sizeof line, "%s %.26s\n", queue, name + TIME_DIGITS + 1);
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

/* Where a link is impossible: a copy of the staged file, synced. */
static int
copy_into(int fromfd, const char *name, int tofd, bool nosync)
{
	char buf[65536];
	int in = spool_open_file(fromfd, name, O_RDONLY, 0, NULL);
	if (in < 0)
		return -1;
	int out = openat(tofd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (out < 0) {
		int err = errno;
		close(in);
		errno = err;
		return -1;
	}
	ssize_t r;
	int rc = 0;
	while ((r = read(in, buf, sizeof buf)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		if (write_all(out, buf, (size_t)r) != 0) {
			rc = -1;
			break;
		}
	}
	if (rc == 0 && !nosync)
		rc = fdatasync(out);
	int err = errno;
	close(in);
	if (close(out) != 0 && rc == 0)
		rc = -1, err = errno;
	if (rc != 0)
		unlinkat(tofd, name, 0);
	errno = err;
	return rc;
}

/* The staged file name into q's tmp/: a hard link, or a copy (recorded)
 * where the file system cannot link it. */
static int
link_into(int tfd, int stagefd, const char *name, spool_queue *q, bool nosync)
{
	if (linkat(stagefd, name, q->tmpfd, name, 0) == 0)
		return 0;
	if (errno != EXDEV && errno != EMLINK)
		return -1;
	if (copy_into(stagefd, name, q->tmpfd, nosync) != 0)
		return -1;
	note_copy(tfd, q->name, name);
	return 0;
}

/* tmp/NAME into new/NAME, as a send does (6.6: never replacing). */
static int
into_new(int tmpfd, int newfd, const char *name)
{
	if (renameat2(tmpfd, name, newfd, name, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (linkat(tmpfd, name, newfd, name, 0) != 0)
		return -1;
	unlinkat(tmpfd, name, 0);
	return 0;
}

static int
ids_fd(spool_queue *q, struct spool_err *e)
{
	if (mkdirat(q->fd, "ids", 0777) == 0 ? fsync_dir(q->fd) != 0 : errno != EEXIST)
		return spool_fail_errno(e, errno, "create %s/ids", q->path);
	int fd = openat(q->fd, "ids", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return fd >= 0 ? fd : spool_fail_errno(e, errno, "open %s/ids", q->path);
}

/* tmp/NAME.key holding the id, as mq-send --id writes it (section 10). */
static int
marker_prepare(spool_queue *q, const char *name, bool nosync)
{
	char key[NAME_LEN + 8];
	snprintf(key, sizeof key, "%s.key", name);
	int fd = openat(q->tmpfd, key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0)
		return -1;
	int rc = write_all(fd, name + TIME_DIGITS + 1, ULID_LEN);
	if (rc == 0 && !nosync)
		rc = fsync(fd);
	if (close(fd) != 0)
		rc = -1;
	if (rc != 0)
		unlinkat(q->tmpfd, key, 0);
	return rc;
}

static void
target_close(struct target *t)
{
	if (t->lockfd >= 0)
		close(t->lockfd);
	if (t->idsfd >= 0)
		close(t->idsfd);
	spool_queue_close(t->q);
}

/* Make the subscribers' tmp/ (or new/) durable: an fsync of each for one or
 * two, else one syncfs of the spool's file system, as a batch does (6.2). */
static int
sync_dirs(const struct target *tv, size_t nt, bool new)
{
	if (nt > 2)
		return syncfs(new ? tv[0].q->newfd : tv[0].q->tmpfd);
	for (size_t t = 0; t < nt; t++)
		if (fsync_dir(new ? tv[t].q->newfd : tv[t].q->tmpfd) != 0)
			return -1;
	return 0;
}

/* Undo what a publish put into t's tmp/ (before the commit point). */
static void
target_undo(struct target *t, spool_batch *b)
{
	char key[NAME_LEN + 8];
	for (size_t i = 0; i < t->linked; i++)
		unlinkat(t->q->tmpfd, batch_name(b, i), 0);
	if (t->keyed) {
		snprintf(key, sizeof key, "%s.key", batch_name(b, 0));
		unlinkat(t->q->tmpfd, key, 0);
	}
	t->linked = 0;
	t->keyed = false;
}

/* A subscriber, opened, locked where it must be, checked: 1 it takes the
 * batch, 0 it does not (said why), -1 a duplicate of a --id it has, -2 the
 * queue is gone. */
static int
target_open(spool_topic *tp, spool_batch *b, const char *name, struct target *t, const char *enc)
{
	const struct spool_send_opts *o = batch_opts(b);
	struct spool_err e = {0};
	*t = (struct target){.lockfd = -1, .idsfd = -1};
	if (!(t->q = spool_queue_open(tp->sp, name, 0, &e))) {
		warn("topic %s: subscriber %s: %s: not sent to it", tp->name, name,
		     e.code == EX_NOTFOUND ? "the queue was removed" : e.msg);
		return e.code == EX_NOTFOUND ? -2 : 0;
	}
	if ((o->key || t->q->cfg.max_length > 0) && (t->lockfd = queue_lock(t->q, &e)) < 0)
		goto no;
	if (o->key) {
		if ((t->idsfd = ids_fd(t->q, &e)) < 0)
			goto no;
		int seen = dedup_seen(t->q, t->idsfd, enc, &e);
		if (seen < 0)
			goto no;
		if (seen) {
			warn("topic %s: subscriber %s: duplicate of %s (key '%s' seen within the dedup "
			     "window): not sent to it", tp->name, name, dedup_first(), o->key);
			return -1;
		}
	}
	if (spool_queue_admit(t->q, o->due > spool_now() ? 0 : (int64_t)batch_count(b), &e) != 0)
		goto no;
	return 1;
no:
	warn("topic %s: subscriber %s: %s: not sent to it", tp->name, name, e.msg);
	return 0;
}

/*
 * The commit of a topic's batch (15.2): check every subscriber; link each
 * staged file into those that take it; rename the staged files to NAME.go
 * (the commit point) and fsync .pub/; rename the links into each new/;
 * remove the staged files.
 */
long
topic_commit(spool_batch *b, const char **dup_of, struct spool_err *e)
{
	spool_topic *tp = batch_topic(b);
	const struct spool_send_opts *o = batch_opts(b);
	size_t n = batch_count(b), nt = 0, dups = 0, full = 0, gone = 0;
	struct target *tv = NULL;
	char **subs = NULL, enc[NAME_MAX + 1] = "";
	long rc = -1;
	int stagefd = tp->stage->tmpfd;

	if (o->key && encode_key(o->key, enc, sizeof enc) != 0) {
		spool_fail(e, EX_USAGE, "--id: key too long once encoded for a file name");
		goto out;
	}
	if (!(subs = names_of(tp->fd, false, e)))
		goto out;
	size_t ns = 0;
	while (subs[ns])
		ns++;
	if (ns == 0) {
		int kfd = sub_fd(tp->fd, ".kept", false);
		if (kfd < 0) {
			spool_fail(e, EX_NOUSER, "topic %s has no subscribers: not sent", tp->name);
			goto out;
		}
		/* kept for the first subscriber: durable there, as in new/ */
		size_t i = 0;
		if (batch_sync(b, e) == 0) {
			for (; i < n; i++)
				if (renameat2(stagefd, batch_name(b, i), kfd, batch_name(b, i),
				              RENAME_NOREPLACE) != 0) {
					spool_fail_errno(e, errno, "rename topic %s/.pub/%s to .kept/",
					                 tp->name, batch_name(b, i));
					break;
				}
			if (i == n && !o->nosync && fsync_dir(kfd) != 0)
				spool_fail_errno(e, errno, "fsync topic %s/.kept", tp->name);
			else if (i == n)
				rc = (long)n;
		}
		if (rc < 0) /* all or none */
			while (i-- > 0)
				renameat(kfd, batch_name(b, i), stagefd, batch_name(b, i));
		close(kfd);
		if (rc > 0)
			warn("topic %s has no subscribers yet: kept for the first", tp->name);
		goto out;
	}
	if (!(tv = calloc(ns, sizeof *tv))) {
		spool_fail_errno(e, ENOMEM, "publish");
		goto out;
	}
	for (size_t s = 0; s < ns; s++) {
		int ok = target_open(tp, b, subs[s], &tv[nt], enc);
		if (ok > 0) {
			nt++;
			continue;
		}
		if (ok == -1)
			dups++;
		else if (ok == -2)
			gone++;
		else
			full++;
		target_close(&tv[nt]);
	}
	if (nt == 0 && dups == 0) {
		spool_fail(e, full ? EX_TEMPFAIL : EX_NOUSER,
		           "topic %s: no subscriber could take it: not sent", tp->name);
		goto out;
	}
	tp->missed += (long)(full + gone);
	if (nt == 0) { /* every one that could take it has it already */
		if (dup_of)
			*dup_of = dedup_first();
		rc = 0;
		goto out;
	}
	if (batch_sync(b, e) != 0)
		goto out;
	for (size_t t = 0; t < nt; t++) {
		struct target *x = &tv[t];
		bool bad = false;
		for (; x->linked < n; x->linked++) {
			if (link_into(tp->fd, stagefd, batch_name(b, x->linked), x->q, o->nosync) != 0) {
				bad = true;
				break;
			}
		}
		if (!bad && o->key) {
			if (marker_prepare(x->q, batch_name(b, 0), o->nosync) == 0)
				x->keyed = true;
			else
				bad = true;
		}
		if (bad) {
			warn("topic %s: subscriber %s: link into tmp/: %s: not sent to it", tp->name,
			     x->q->name, strerror(errno));
			target_undo(x, b);
			target_close(x);
			tv[t--] = tv[--nt];
			tp->missed++;
		}
	}
	if (nt == 0) {
		spool_fail(e, EX_TEMPFAIL, "topic %s: no subscriber could take it: not sent", tp->name);
		goto out;
	}
	/* the links must outlive a power loss that keeps the commit point */
	if (!o->nosync && sync_dirs(tv, nt, false) != 0) {
		spool_fail_errno(e, errno, "sync the subscribers' tmp/");
		for (size_t t = 0; t < nt; t++)
			target_undo(&tv[t], b);
		goto out;
	}
	/* the commit point: from here on the repair completes the publish */
	size_t go = 0;
	char gname[NAME_LEN + 4];
	for (; go < n; go++) {
		snprintf(gname, sizeof gname, "%s" GO, batch_name(b, go));
		if (renameat(stagefd, batch_name(b, go), stagefd, gname) != 0)
			break;
	}
	if (go < n || (!o->nosync && fsync_dir(stagefd) != 0)) {
		spool_fail_errno(e, errno, "commit topic %s/.pub/%s", tp->name, batch_name(b, go < n ? go : 0));
		while (go-- > 0) {
			snprintf(gname, sizeof gname, "%s" GO, batch_name(b, go));
			renameat(stagefd, gname, stagefd, batch_name(b, go));
		}
		for (size_t t = 0; t < nt; t++)
			target_undo(&tv[t], b);
		goto out;
	}
	bool left = false; /* a link stays in a tmp/: the repair puts it in new/ */
	for (size_t t = 0; t < nt; t++) {
		struct target *x = &tv[t];
		for (size_t i = 0; i < n; i++)
			if ((batch_key(b)[0] ? /* each subscriber's copy in line behind its key */
			     key_publish(x->q, x->q->tmpfd, batch_name(b, i), batch_name(b, i),
			                 batch_key(b), o->nosync, NULL) < 0 :
			     into_new(x->q->tmpfd, x->q->newfd, batch_name(b, i)) != 0) &&
			    errno != ENOENT /* a repair was faster */) {
				warn("topic %s: subscriber %s: rename tmp/%s to new/: %s (the repair "
				     "finishes it)", tp->name, x->q->name, batch_name(b, i), strerror(errno));
				left = true;
			}
	}
	int sync_err = 0; /* published, but maybe not durably: an error all the same */
	if (!o->nosync && sync_dirs(tv, nt, true) != 0) {
		sync_err = errno;
		left = true;
	}
	for (size_t t = 0; t < nt; t++) {
		struct target *x = &tv[t];
		if (x->keyed) {
			char key[NAME_LEN + 8];
			snprintf(key, sizeof key, "%s.key", batch_name(b, 0));
			if (renameat(x->q->tmpfd, key, x->idsfd, enc) != 0 ||
			    (!o->nosync && fsync_dir(x->idsfd) != 0))
				warn("topic %s: subscriber %s: %s was sent, but its dedup marker may be "
				     "missing: %s", tp->name, x->q->name, batch_name(b, 0) + TIME_DIGITS + 1,
				     strerror(errno));
		}
	}
	if (!left)
		for (size_t i = 0; i < n; i++) {
			snprintf(gname, sizeof gname, "%s" GO, batch_name(b, i));
			unlinkat(stagefd, gname, 0);
		}
	rc = sync_err ? spool_fail_errno(e, sync_err, "sync the new/ of topic %s's subscribers", tp->name) :
	     (long)n;
out:
	for (size_t t = 0; t < nt; t++)
		target_close(&tv[t]);
	free(tv);
	spool_strv_free(subs);
	batch_finish(b, rc > 0);
	return rc;
}

spool_topic *
spool_topic_open(spool *sp, const char *topic, struct spool_err *e)
{
	if (!spool_topic_name_ok(topic))
		return spool_fail(e, EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(topic)), NULL;
	spool_topic *t = calloc(1, sizeof *t);
	if (!t)
		return spool_fail_errno(e, ENOMEM, "open topic %s", topic), NULL;
	t->sp = sp;
	t->lockfd = -1;
	strcpy(t->name, topic);
	if ((t->fd = topic_fd(sp, topic, false, e)) < 0) {
		if (e && e->code == EX_NOTFOUND)
			spool_fail(e, EX_NOUSER, "topic %s has no subscribers: not sent", topic);
		free(t);
		return NULL;
	}
	char **subs = names_of(t->fd, false, e);
	bool none = subs && !subs[0];
	spool_strv_free(subs);
	int kfd = none ? sub_fd(t->fd, ".kept", false) : -1;
	if (kfd >= 0)
		close(kfd);
	else if (none)
		spool_fail(e, EX_NOUSER, "topic %s has no subscribers: not sent", topic);
	if (!subs || (none && kfd < 0) ||
	    (t->lockfd = topic_lock(t->fd, LOCK_SH, topic, e)) < 0)
		goto fail;
	int pub = sub_fd(t->fd, ".pub", true);
	if (pub < 0) {
		spool_fail_errno(e, errno, "create topic %s/.pub", topic);
		goto fail;
	}
	spool_queue *q = t->stage = calloc(1, sizeof *q);
	if (!q || asprintf(&q->path, "%s/" TOPICS "/%s/.pub", sp->root, topic) < 0) {
		close(pub);
		spool_fail_errno(e, ENOMEM, "open topic %s", topic);
		goto fail;
	}
	q->sp = sp;
	q->newfd = q->curfd = q->deadfd = q->donefd = q->holdfd = -1;
	q->fd = pub; /* no config there: the defaults, max-size 64M */
	snprintf(q->name, sizeof q->name, "%s", topic);
	if ((q->tmpfd = dup(pub)) < 0 || config_load(q, e) != 0) {
		spool_fail_errno(e, errno, "open topic %s", topic);
		goto fail;
	}
	return t;
fail:
	spool_topic_close(t);
	return NULL;
}

spool_batch *
spool_topic_batch(spool_topic *t, const struct spool_send_opts *o, struct spool_err *e)
{
	spool_batch *b = spool_batch_new(t->stage, o, e);
	if (b)
		batch_set_topic(b, t);
	return b;
}

long
spool_topic_missed(const spool_topic *t)
{
	return t->missed;
}

void
spool_topic_close(spool_topic *t)
{
	if (!t)
		return;
	if (t->stage) {
		if (t->stage->path)
			spool_queue_close(t->stage);
		else
			free(t->stage);
	}
	if (t->lockfd >= 0)
		close(t->lockfd);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

/* Every queue's tmp/ and new/, opened as they are (no config read, nothing
 * made): where the repair looks for the links of a publish. */
struct qdirs {
	char *name;
	int tmpfd, newfd;
};

static struct qdirs *
queue_dirs(spool *sp, size_t *np, struct spool_err *e)
{
	char **names = spool_queues(sp, e), path[96];
	if (!names)
		return NULL;
	size_t n = 0;
	while (names[n])
		n++;
	struct qdirs *v = calloc(n + 1, sizeof *v);
	if (!v) {
		spool_strv_free(names);
		return spool_fail_errno(e, ENOMEM, "repair topics"), NULL;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/tmp", names[i]);
		v[i].tmpfd = openat(sp->fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		snprintf(path, sizeof path, "%s/new", names[i]);
		v[i].newfd = openat(sp->fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		v[i].name = names[i];
	}
	free(names); /* the strings now belong to v */
	*np = n;
	return v;
}

static void
queue_dirs_free(struct qdirs *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		if (v[i].tmpfd >= 0)
			close(v[i].tmpfd);
		if (v[i].newfd >= 0)
			close(v[i].newfd);
		free(v[i].name);
	}
	free(v);
}

/* The staged messages of one topic whose publisher is gone. */
static void
repair_stage(int pubfd, struct qdirs *qv, size_t nq, bool only_go, struct spool_topics_repair *r)
{
	struct name_list l = {0};
	if (list_scan(&l, pubfd, NULL) != 0)
		return;
	for (size_t i = 0; i < l.n; i++) {
		char name[NAME_LEN], key[NAME_LEN + 8];
		struct spool_name nm;
		size_t len = strlen(l.v[i]);
		bool go = len > 3 && strcmp(l.v[i] + len - 3, GO) == 0;
		snprintf(name, sizeof name, "%.*s", (int)(go ? len - 3 : len), l.v[i]);
		if (name_parse(name, &nm) != 0 || (only_go && !go) || (!only_go && go))
			continue; /* not ours, or not this pass */
		snprintf(key, sizeof key, "%s.key", name);
		bool done = true;
		for (size_t q = 0; q < nq; q++) {
			if (qv[q].tmpfd < 0)
				continue;
			if (!go) { /* before the commit point: out of every subscriber */
				unlinkat(qv[q].tmpfd, name, 0);
				unlinkat(qv[q].tmpfd, key, 0);
				continue;
			}
			struct stat st;
			if (fstatat(qv[q].tmpfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
				continue; /* never linked there, or in new/ already */
			if (qv[q].newfd < 0 || into_new(qv[q].tmpfd, qv[q].newfd, name) != 0) {
				if (errno == EEXIST)
					unlinkat(qv[q].tmpfd, name, 0); /* in new/ already */
				else
					done = false;
				continue;
			}
			fsync_dir(qv[q].newfd);
		}
		if (done && unlinkat(pubfd, l.v[i], 0) == 0 && r)
			(*(go ? &r->completed : &r->undone))++;
	}
	list_clear(&l);
}

/* Kept messages of a topic that has subscribers now, to each of them, by
 * the protocol of a publish: links, commit point (.kept/NAME to .pub/NAME.go),
 * renames into new/.  Under the topic's lock, held exclusively. */
static long
deliver_kept(spool *sp, int tfd, struct spool_err *e)
{
	struct name_list l = {0};
	int kfd = sub_fd(tfd, ".kept", false), pub = -1;
	char **subs = NULL;
	spool_queue **qv = NULL;
	size_t nq = 0;
	long n = 0;
	if (kfd < 0 || list_scan(&l, kfd, NULL) != 0 || l.n == 0)
		goto out;
	if (!(subs = names_of(tfd, false, e)) || !subs[0])
		goto out;
	size_t ns = 0;
	while (subs[ns])
		ns++;
	if (!(qv = calloc(ns, sizeof(spool_queue *))) || (pub = sub_fd(tfd, ".pub", true)) < 0)
		goto out;
	for (size_t s = 0; s < ns; s++)
		if ((qv[nq] = spool_queue_open(sp, subs[s], 0, NULL)))
			nq++;
	for (size_t i = 0; nq && i < l.n; i++) {
		const char *name = l.v[i];
		struct spool_name nm;
		char gname[NAME_LEN + 4];
		bool bad = false;
		if (name_parse(name, &nm) != 0)
			continue;
		for (size_t q = 0; q < nq; q++)
			if ((link_into(tfd, kfd, name, qv[q], false) != 0 && errno != EEXIST) ||
			    fsync_dir(qv[q]->tmpfd) != 0)
				bad = true;
		snprintf(gname, sizeof gname, "%s" GO, name);
		if (bad || renameat(kfd, name, pub, gname) != 0 || fsync_dir(pub) != 0)
			continue; /* the links stay for the next try: EEXIST then */
		bool left = false;
		for (size_t q = 0; q < nq; q++) {
			if (into_new(qv[q]->tmpfd, qv[q]->newfd, name) != 0 && errno != ENOENT)
				left = true;
			fsync_dir(qv[q]->newfd);
		}
		if (!left)
			unlinkat(pub, gname, 0);
		n++;
	}
out:
	for (size_t q = 0; q < nq; q++)
		spool_queue_close(qv[q]);
	free(qv);
	spool_strv_free(subs);
	list_clear(&l);
	if (kfd >= 0)
		close(kfd);
	if (pub >= 0)
		close(pub);
	return n;
}

int
spool_topics_repair(spool *sp, struct spool_topics_repair *r, struct spool_err *e)
{
	struct spool_err ign;
	if (r)
		*r = (struct spool_topics_repair){0};
	sp->topics_repaired = spool_now();
	char **topics = spool_topics(sp, &ign);
	if (!topics)
		return 0;
	struct qdirs *qv = NULL;
	size_t nq = 0;
	int rc = 0;
	for (char **t = topics; *t; t++) {
		int tfd = topic_fd(sp, *t, false, &ign);
		if (tfd < 0)
			continue;
		int pub = sub_fd(tfd, ".pub", false);
		bool staged = pub >= 0 && count_names(tfd, ".pub", NULL) > 0;
		long kept = count_names(tfd, ".kept", NULL);
		if (staged) {
			if (!qv && !(qv = queue_dirs(sp, &nq, e))) {
				rc = -1;
			} else {
				/* past their commit point: to finish, whoever else is at it */
				repair_stage(pub, qv, nq, true, r);
			}
		}
		if (!rc && (staged || kept)) {
			/* the rest only where no living publisher is working */
			int lk = topic_lock(tfd, LOCK_EX | LOCK_NB, *t, &ign);
			if (lk >= 0) {
				if (staged)
					repair_stage(pub, qv, nq, false, r);
				long d = kept ? deliver_kept(sp, tfd, &ign) : 0;
				if (r)
					r->delivered += d;
				close(lk);
			}
		}
		if (pub >= 0)
			close(pub);
		close(tfd);
		if (rc)
			break;
	}
	queue_dirs_free(qv, nq);
	spool_strv_free(topics);
	return rc;
}

int
spool_subscribe(spool *sp, const char *topic, const char *queue, struct spool_err *e)
{
	if (!spool_topic_name_ok(topic))
		return spool_fail(e, EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(topic));
	spool_queue *q = spool_queue_open(sp, queue, SPOOL_CREATE, e);
	if (!q)
		return -1;
	spool_queue_close(q);
	int tfd = topic_fd(sp, topic, true, e);
	if (tfd < 0)
		return -1;
	int rc = 1;
	int fd = openat(tfd, queue, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (fd >= 0) {
		close(fd);
		if (fsync_dir(tfd) != 0)
			rc = spool_fail_errno(e, errno, "fsync topic %s", topic);
	} else if (errno == EEXIST) {
		struct stat st;
		rc = fstatat(tfd, queue, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) ? 0 :
		     spool_fail(e, EX_DATAERR, "topic %s: %s is in the way: not a regular file", topic,
		                queue);
	} else {
		rc = spool_fail_errno(e, errno, "create topic %s/%s", topic, queue);
	}
	close(tfd);
	return rc;
}

long
spool_topic_deliver_kept(spool *sp, const char *topic, struct spool_err *e)
{
	struct spool_err ign;
	int tfd = topic_fd(sp, topic, false, e);
	if (tfd < 0)
		return -1;
	long n = 0;
	if (count_names(tfd, ".kept", NULL) > 0) {
		int lk = topic_lock(tfd, LOCK_EX | LOCK_NB, topic, &ign);
		if (lk >= 0) {
			n = deliver_kept(sp, tfd, &ign);
			close(lk);
		} else {
			warn("topic %s: a publisher is at work: what it kept goes to the subscribers at "
			     "the next repair (mq-stat)", topic);
		}
	}
	close(tfd);
	return n;
}

int
spool_unsubscribe(spool *sp, const char *topic, const char *queue, struct spool_err *e)
{
	if (!spool_topic_name_ok(topic))
		return spool_fail(e, EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(topic));
	if (!spool_queue_name_ok(queue))
		return spool_fail(e, EX_USAGE, "bad queue name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(queue));
	int tfd = topic_fd(sp, topic, false, e);
	if (tfd < 0)
		return e && e->code == EX_NOTFOUND ?
		       spool_fail(e, EX_NOTFOUND, "queue %s is not subscribed to topic %s", queue, topic) : -1;
	int rc = 0;
	if (unlinkat(tfd, queue, 0) != 0)
		rc = errno == ENOENT ?
		     spool_fail(e, EX_NOTFOUND, "queue %s is not subscribed to topic %s", queue, topic) :
		     spool_fail_errno(e, errno, "remove topic %s/%s", topic, queue);
	else if (fsync_dir(tfd) != 0)
		rc = spool_fail_errno(e, errno, "fsync topic %s", topic);
	close(tfd);
	return rc;
}

int
spool_topic_keep(spool *sp, const char *topic, int on, struct spool_err *e)
{
	if (!spool_topic_name_ok(topic))
		return spool_fail(e, EX_USAGE, "bad topic name '%s': want 1-64 of A-Z a-z 0-9 . _ -, "
		                  "not starting with . or -", spool_printable(topic));
	int tfd = topic_fd(sp, topic, on, e);
	if (tfd < 0)
		return on || !e || e->code != EX_NOTFOUND ? -1 : 0;
	int rc = 0;
	if (on) {
		int fd = sub_fd(tfd, ".kept", true);
		if (fd < 0)
			rc = spool_fail_errno(e, errno, "create topic %s/.kept", topic);
		else
			close(fd);
	} else if (unlinkat(tfd, ".kept", AT_REMOVEDIR) != 0 && errno != ENOENT) {
		rc = errno == ENOTEMPTY || errno == EEXIST ?
		     spool_fail(e, EX_TEMPFAIL, "topic %s still keeps messages for its first subscriber",
		                topic) :
		     spool_fail_errno(e, errno, "remove topic %s/.kept", topic);
	}
	close(tfd);
	return rc;
}
