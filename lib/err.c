/* SPDX-License-Identifier: MIT */
/* err.c: filling the caller's struct spool_err, and errno -> exit code. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "spool_priv.h"

int
spool_errno_code(int err)
{
	switch (err) {
	case ENOENT: case ENOTDIR: return EX_NOINPUT;
	case EACCES: case EPERM: case EROFS: return EX_NOPERM;
	case ENOSPC: case EDQUOT: case EAGAIN: return EX_TEMPFAIL;
	case EEXIST: case EMLINK: case ENAMETOOLONG: return EX_CANTCREAT;
	case SPOOL_ENOTREG: return EX_DATAERR;
	case ENOMEM: return EX_OSERR; /* as the commands say it (exitcodes.h) */
	default: return EX_IOERR;
	}
}

static void
vfill(struct spool_err *e, int code, const char *fmt, va_list ap)
{
	if (!e)
		return;
	e->code = code;
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
}

int
spool_fail(struct spool_err *e, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfill(e, code, fmt, ap);
	va_end(ap);
	return -1;
}

/* "what: strerror(err)", with the exit code that err means. */
int
spool_fail_errno(struct spool_err *e, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfill(e, spool_errno_code(err), fmt, ap);
	va_end(ap);
	if (e) {
		size_t n = strlen(e->msg);
		snprintf(e->msg + n, sizeof e->msg - n, ": %s", spool_strerror(err));
	}
	errno = err;
	return -1;
}
