/* SPDX-License-Identifier: MIT */
/*
 * rm.c: an operator's three changes to messages nobody holds: delete one
 * (mq-rm: one unlink), make a waiting one due now (mq-replay --now: one
 * rename within new/), and replay a dead or done one (mq-replay: back into
 * new/, attempts reset, no expiry).  A claimed message belongs to its
 * consumer: it is deleted only when forced, and never made due (it is not
 * waiting).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "spool_priv.h"

static int
state_fd(spool_queue *q, enum spool_state st, struct spool_err *e)
{
	switch (st) {
	case SPOOL_READY: case SPOOL_DELAYED: return q->newfd;
	case SPOOL_CLAIMED: return q->curfd;
	case SPOOL_DEAD: return subdir_fd(q, "dead", e);
	case SPOOL_DONE: return subdir_fd(q, "done", e);
	case SPOOL_WAITING: /* its name is ENC/NAME there */
		return key_dirfd(q) >= 0 ? key_dirfd(q) : spool_fail_errno(e, errno, "open %s/keys", q->path);
	}
	return spool_fail(e, EX_SOFTWARE, "bad state");
}

int
spool_rm(spool_queue *q, const struct spool_entry *en, int force, struct spool_err *e)
{
	if (en->state == SPOOL_CLAIMED && !force)
		return spool_fail(e, EX_TEMPFAIL, "%s: claimed by a consumer: not deleted (-f deletes it)",
		                  en->id);
	int fd = state_fd(q, en->state, e);
	if (fd < 0)
		return -1;
	/* the head of a key: once it is gone, the key goes to the next one */
	char enc[NAME_MAX + 1];
	struct spool_name n;
	bool head = en->state <= SPOOL_CLAIMED && name_parse(en->name, &n) == 0 &&
	            key_of_file(fd, en->name, enc, sizeof enc);
	if (unlinkat(fd, en->name, 0) != 0) {
		if (errno == ENOENT) /* claimed, acked, replayed or deleted meanwhile */
			return spool_fail(e, EX_NOTFOUND, "%s: gone from %s (it changed state meanwhile)",
			                  en->id, spool_state_name(en->state));
		return spool_fail_errno(e, errno, "unlink %s", en->path);
	}
	if (head)
		key_removed(q, &n, enc);
	return 0;
}

int
spool_due_now(spool_queue *q, const struct spool_entry *en, int nosync, struct spool_err *e)
{
	struct spool_name n;
	char name[NAME_LEN];
	if (en->state != SPOOL_DELAYED)
		return spool_fail(e, EX_NOTFOUND, "%s: not waiting (%s)", en->id,
		                  spool_state_name(en->state));
	if (name_parse(en->name, &n) != 0)
		return spool_fail(e, EX_DATAERR, "%s: not a message name", en->name);
	n.t = spool_now(); /* attempts and expiry kept: a retry, only sooner */
	name_format(name, sizeof name, &n);
	if (renameat2(q->newfd, en->name, q->newfd, name, RENAME_NOREPLACE) != 0) {
		if (errno == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "%s: gone (claimed or deleted meanwhile)", n.id);
		return spool_fail_errno(e, errno, "rename new/%s to new/%s", en->name, name);
	}
	spool_queue_arrived(q, name);
	if (!nosync && fsync_dir(q->newfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/new", q->path);
	return 0;
}

int
spool_replay(spool_queue *q, const struct spool_entry *en, spool_queue *to, int nosync,
             struct spool_err *e)
{
	struct spool_name n;
	char name[NAME_LEN];
	if (!to)
		to = q;
	if (name_parse(en->name, &n) != 0)
		return spool_fail(e, EX_DATAERR, "%s: not a message name", en->name);
	int fromfd = subdir_fd(q, en->state == SPOOL_DONE ? "done" : "dead", e);
	if (fromfd < 0)
		return -1;
	n.t = spool_now();
	n.attempts = 0;
	n.exp = 0; /* an operator replaying it wants it delivered */
	name_format(name, sizeof name, &n);
	char enc[NAME_MAX + 1];
	if (key_of_file(fromfd, en->name, enc, sizeof enc)) {
		/* behind what its key has queued since: at the end of keys/ENC/ */
		if (key_publish(to, fromfd, en->name, name, enc, nosync, e) < 0) {
			if (errno == ENOENT)
				return spool_fail(e, EX_NOTFOUND, "%s: gone (replayed by someone else?)", n.id);
			return -1;
		}
		reason_remove(q, n.id);
		if (!nosync && fsync_dir(to->newfd) != 0)
			return spool_fail_errno(e, errno, "fsync %s/new", to->path);
		return 0;
	}
	if (renameat2(fromfd, en->name, to->newfd, name, RENAME_NOREPLACE) != 0) {
		if (errno == ENOENT)
			return spool_fail(e, EX_NOTFOUND, "%s: gone (replayed by someone else?)", n.id);
		return spool_fail_errno(e, errno, "rename %s to %s/new/%s", en->path, to->name, name);
	}
	spool_queue_arrived(to, name);
	reason_remove(q, n.id); /* a fresh start: no last failure */
	if (!nosync && fsync_dir(to->newfd) != 0)
		return spool_fail_errno(e, errno, "fsync %s/new", to->path);
	return 0;
}
