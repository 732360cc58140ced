/* SPDX-License-Identifier: MIT */
/*
 * job.c: running a handler for one claimed message, the part mq-recv -x and
 * mq-relayd share.  The child gets the body on stdin (its own descriptor of
 * the file, positioned after the headers) and the message in its environment;
 * the caller holds the lease while it runs (settle.c) and its exit status
 * becomes ack, retry or bury (the qmail/fsq convention, spool-layout.md
 * "Handlers"), settled by spool_settle.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool_priv.h"

struct spool_job {
	spool_msg *m;
	pid_t pid;
	int pidfd;
	bool pgrp;         /* the child leads its own process group */
	bool killed;       /* spool_job_kill was called */
	bool reaped;       /* waited for: status holds its wait status */
	int status;
};

static void
set_header_env(const char *h)
{
	char name[80] = "MQ_HDR_";
	size_t k = strlen(name);
	const char *colon = strchr(h, ':');
	if (!colon)
		return;
	for (const char *p = h; p < colon && k + 1 < sizeof name; p++)
		name[k++] = *p == '-' ? '_' : (*p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p);
	name[k] = '\0';
	const char *v = colon + 1;
	while (*v == ' ')
		v++;
	setenv(name, v, 1);
}

static void
child(spool_msg *m, int bodyfd, const char *cmd, int flags)
{
	char num[24];
	sigset_t none;

	/* the daemon may block signals for signalfd; a handler starts clean */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	/* the lease is kept alive by the parent: without it, stop */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (dup2(bodyfd, 0) < 0)
		_exit(127);
	if (flags & SPOOL_JOB_PGRP)
		setpgid(0, 0); /* so a timeout can stop the handler and its children */
	setenv("MQ_ID", m->n.id, 1);
	setenv("MQ_QUEUE", m->q->name, 1);
	snprintf(num, sizeof num, "%u", m->n.attempts);
	setenv("MQ_ATTEMPT", num, 1);
	setenv("MQ_FILE", m->path, 1);
	setenv("MQ_SPOOL", m->q->sp->root, 1);
	if (m->headers)
		for (char **h = m->headers; *h; h++)
			set_header_env(*h);
	execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	_exit(127);
}

spool_job *
spool_job_start(spool_msg *m, const char *cmd, int flags, struct spool_err *e)
{
	spool_job *j = calloc(1, sizeof *j);
	int bodyfd = -1;
	if (!j) {
		spool_fail_errno(e, errno, "run handler");
		goto fail;
	}
	j->m = m;
	j->pidfd = -1;
	if (!spool_msg_headers(m, e) || (bodyfd = spool_msg_body_fd(m, e)) < 0)
		goto fail;
	(void)fflush(NULL); /* what stdio holds is not the handler's to write twice */
	j->pid = fork();
	if (j->pid < 0) {
		/* EAGAIN or ENOMEM: no process to be had now, try again later */
		spool_fail(e, EX_TEMPFAIL, "fork: %s", strerror(errno));
		goto give_back;
	}
	if (j->pid == 0)
		child(m, bodyfd, cmd, flags);
	if (flags & SPOOL_JOB_PGRP) {
		setpgid(j->pid, j->pid); /* also here: no race with spool_job_kill */
		j->pgrp = true;
	}
	close(bodyfd);
	bodyfd = -1;
	j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
	if (j->pidfd < 0) {
		/* The handler may have started, and started others: stop them all,
		 * and leave the message to its lease (counted), never run twice. */
		spool_fail_errno(e, errno, "pidfd_open");
		kill(j->pgrp ? -j->pid : j->pid, SIGKILL);
		while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
			;
		goto fail;
	}
	fcntl(j->pidfd, F_SETFD, FD_CLOEXEC);
	return j;
give_back:
	/* No process could be made, so no handler ran: the message is not at
	 * fault, and goes back at once, uncounted.  (A message we cannot read
	 * stays claimed: its lease brings it back counted, towards dead/.) */
	spool_release(m, &(struct spool_err){0});
fail:
	if (bodyfd >= 0)
		close(bodyfd);
	free(j);
	spool_msg_free(m);
	return NULL;
}

pid_t spool_job_pid(const spool_job *j) { return j->pid; }
int spool_job_pidfd(const spool_job *j) { return j->pidfd; }
spool_msg *spool_job_msg(const spool_job *j) { return j->m; }

int
spool_job_kill(spool_job *j, int sig)
{
	/* the whole process group: sh -c and what it started */
	j->killed = true;
	return kill(j->pgrp ? -j->pid : j->pid, sig);
}

int
spool_job_finish(spool_job *j, int timed_out, enum spool_outcome *out, char *desc, size_t desclen,
                 struct spool_err *e)
{
	int st, r;
	char buf[64];
	if (!desc)
		desc = buf, desclen = sizeof buf;
	if (!j->reaped) { /* called again after a failed settle: reaped already */
		while ((r = waitpid(j->pid, &st, 0)) < 0 && errno == EINTR)
			;
		if (r < 0)
			return spool_fail_errno(e, errno, "wait for handler %d", (int)j->pid);
		j->reaped = true;
		j->status = st;
		/* the shell is gone; what it started and that ignored TERM is not */
		if (j->killed && j->pgrp)
			kill(-j->pid, SIGKILL);
	}
	st = j->status;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	if (timed_out > 0)
		snprintf(desc, desclen, "timeout");
	else if (WIFEXITED(st))
		snprintf(desc, desclen, "exit %d", code);
	else
		snprintf(desc, desclen, "signal %d", WTERMSIG(st));
	/* stopped for shutdown: given back uncounted, unless it had finished
	 * (a handler may complete its work on SIGTERM and exit 0) */
	bool finished = WIFEXITED(st) && (code == 0 || code == 65 || code == 100);
	char why[128];
	struct spool_verdict v = {.what = SPOOL_DO_RETRY, .delay = -1, .status = desc};
	if (timed_out < 0 && !finished) {
		v.what = SPOOL_DO_DEFER, v.delay = 0;
	} else if (timed_out <= 0 && code == 0) {
		v.what = SPOOL_DO_ACK;
	} else if (timed_out <= 0 && (code == 65 || code == 100)) {
		snprintf(why, sizeof why, "handler said bury (%s)", desc);
		v.what = SPOOL_DO_BURY, v.reason = why;
	}
	r = spool_settle(j->m, &v, out, e);
	if (r == 0 && v.what == SPOOL_DO_DEFER && *out == SPOOL_RETRY)
		snprintf(desc, desclen, "stopped");
	return r;
}

void
spool_job_free(spool_job *j)
{
	if (!j)
		return;
	if (j->pidfd >= 0)
		close(j->pidfd);
	spool_msg_free(j->m);
	free(j);
}
