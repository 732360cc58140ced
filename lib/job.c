/* SPDX-License-Identifier: MIT */
/*
 * job.c: running a handler for one claimed message, the part mq-recv -x and
 * mq-relayd share.  The child gets the body on stdin (its own descriptor of
 * the file, positioned after the headers) and the message in its environment;
 * the caller holds the lease while it runs (settle.c) and its exit status
 * becomes ack, retry or bury (the qmail/fsq convention, spool-layout.md
 * "Handlers"), settled by spool_settle.  Its stderr is a pipe: what it writes
 * is passed on to ours as it comes and its tail kept, the reason of a failure
 * (reason.c, spool-layout.md 6.13).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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
	bool cannot_run;   /* exit 126 or 127 */
	int errfd;         /* read end of its stderr, -1 without one */
	bool err_eof;      /* errfd reached its end */
	bool wrapped;      /* raw has been filled round at least once */
	size_t rawpos;     /* next byte of raw to write */
	char raw[REASON_RAW]; /* the tail of its stderr, a ring */
	char tail[REASON_TAIL_OUT];
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

/* The descriptor limit the process started with, while spool_job_raise_nofile
 * has it raised (rlim_cur 0: not raised). */
static struct rlimit nofile_start;

void
spool_job_raise_nofile(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max)
		return;
	struct rlimit up = {r.rlim_max > 65536 ? 65536 : r.rlim_max, r.rlim_max};
	if (up.rlim_cur > r.rlim_cur && setrlimit(RLIMIT_NOFILE, &up) == 0)
		nofile_start = r;
}

static void
child(spool_msg *m, int bodyfd, int errw, const char *cmd, int flags)
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
	/* a handler gets the limit the daemon was given (select(2) wants < 1024) */
	if (nofile_start.rlim_cur)
		setrlimit(RLIMIT_NOFILE, &nofile_start);
	if (dup2(bodyfd, 0) < 0 || (errw >= 0 && dup2(errw, 2) < 0))
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
	int bodyfd = -1, errp[2] = {-1, -1};
	if (!j) {
		spool_fail_errno(e, errno, "run handler");
		goto fail;
	}
	j->m = m;
	j->pidfd = j->errfd = -1;
	if (!spool_msg_headers(m, e) || (bodyfd = spool_msg_body_fd(m, e)) < 0)
		goto fail;
	/* no pipe (out of descriptors): it writes to our stderr, uncaptured */
	if (pipe2(errp, O_CLOEXEC) == 0)
		fcntl(errp[0], F_SETFL, O_NONBLOCK);
	else
		errp[0] = errp[1] = -1;
	(void)fflush(NULL); /* what stdio holds is not the handler's to write twice */
	j->pid = fork();
	if (j->pid < 0) {
		/* EAGAIN or ENOMEM: no process to be had now, try again later */
		spool_fail(e, EX_TEMPFAIL, "fork: %s", strerror(errno));
		goto give_back;
	}
	if (j->pid == 0)
		child(m, bodyfd, errp[1], cmd, flags);
	if (errp[1] >= 0)
		close(errp[1]);
	j->errfd = errp[0];
	errp[0] = errp[1] = -1;
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
	for (int i = 0; i < 2; i++)
		if (errp[i] >= 0)
			close(errp[i]);
	if (j && j->errfd >= 0)
		close(j->errfd);
	free(j);
	spool_msg_free(m);
	return NULL;
}

pid_t spool_job_pid(const spool_job *j) { return j->pid; }
int spool_job_errfd(const spool_job *j) { return j->err_eof ? -1 : j->errfd; }
int spool_job_cannot_run(const spool_job *j) { return j->cannot_run; }

void
spool_job_drain(spool_job *j)
{
	char buf[65536];
	while (j->errfd >= 0 && !j->err_eof) {
		ssize_t r = read(j->errfd, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			j->err_eof = true; /* every writer is gone (or it failed: the same) */
			return;
		}
		(void)write_all(2, buf, (size_t)r); /* operators watch it there */
		for (const char *p = buf; p < buf + r;) {
			size_t n = sizeof j->raw - j->rawpos;
			if (n > (size_t)(buf + r - p))
				n = (size_t)(buf + r - p);
			memcpy(j->raw + j->rawpos, p, n);
			p += n;
			j->rawpos += n;
			if (j->rawpos == sizeof j->raw)
				j->rawpos = 0, j->wrapped = true;
		}
	}
}

/* The tail as escaped lines, for the reason or the dead letter. */
static const char *
job_tail(spool_job *j)
{
	char lin[REASON_RAW];
	size_t n = 0;
	if (j->wrapped) {
		n = sizeof j->raw - j->rawpos;
		memcpy(lin, j->raw + j->rawpos, n);
	}
	memcpy(lin + n, j->raw, j->rawpos);
	n += j->rawpos;
	return reason_tail_lines(lin, n, j->wrapped, j->tail, sizeof j->tail) ? j->tail : NULL;
}
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
	/* the shell could not find or execute the command: not the message's fault */
	j->cannot_run = timed_out == 0 && (code == 126 || code == 127);
	spool_job_drain(j); /* what it wrote before it ended is in the pipe */
	j->m->stderr_tail = job_tail(j);
	if (timed_out > 0)
		snprintf(desc, desclen, "timeout");
	else if (j->cannot_run)
		snprintf(desc, desclen, "exit %d: %s", code, code == 127 ? "not found" : "not executable");
	else if (WIFEXITED(st))
		snprintf(desc, desclen, "exit %d", code);
	else
		snprintf(desc, desclen, "signal %d", WTERMSIG(st));
	/* stopped for shutdown: given back uncounted, unless it had finished
	 * (a handler may complete its work on SIGTERM and exit 0) */
	bool finished = WIFEXITED(st) && (code == 0 || code == 65 || code == 100);
	char why[128];
	struct spool_verdict v = {.what = SPOOL_DO_RETRY, .delay = -1, .status = desc};
	if ((timed_out < 0 && !finished) || j->cannot_run) {
		v.what = SPOOL_DO_DEFER, v.delay = 0;
	} else if (timed_out <= 0 && code == 0) {
		v.what = SPOOL_DO_ACK;
	} else if (timed_out <= 0 && (code == 65 || code == 100)) {
		snprintf(why, sizeof why, "handler said bury (%s)", desc);
		v.what = SPOOL_DO_BURY, v.reason = why;
	}
	r = spool_settle(j->m, &v, out, e);
	j->m->stderr_tail = NULL;
	if (r == 0 && v.what == SPOOL_DO_DEFER && *out == SPOOL_RETRY && !j->cannot_run)
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
	if (j->errfd >= 0)
		close(j->errfd);
	spool_msg_free(j->m);
	free(j);
}
