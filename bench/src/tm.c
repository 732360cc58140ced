/* SPDX-License-Identifier: MIT */
/* tm.c - run one command and report its wall time and peak resident memory.
 *
 * usage: tm [-i IN] [-o OUT] [-t SECONDS] -- CMD [ARG...]
 *   stdin from IN (default: inherited), stdout to OUT (default: inherited);
 *   -t: SIGTERM the command after SECONDS (SIGKILL 5 s later): status 143 or 137.
 * prints on stdout (or stderr when -o is not given and stdout is the command's):
 *   <wall seconds> <peak RSS KiB> <status> <CPU seconds: user + system> <user seconds>
 * status: the exit code, or 128+signal.  Wall time runs from just before fork()
 * to the return of wait4(); peak RSS is ru_maxrss of the child (what GNU time's
 * %M reports), so one timed run gives both.  Used where a bash loop's own
 * fork+exec (about 1 ms) would blur a one-process figure (time to first message).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarmed;
static void on_alarm(int sig) { (void)sig; alarmed = 1; }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    const char *in = NULL, *out = NULL;
    double limit = 0;
    int c;
    while ((c = getopt(argc, argv, "+i:o:t:")) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'o': out = optarg; break;
        case 't': limit = atof(optarg); break;
        default: fprintf(stderr, "usage: tm [-i IN] [-o OUT] [-t SECONDS] -- CMD [ARG...]\n"); return 2;
        }
    }
    if (optind >= argc) { fprintf(stderr, "usage: tm [-i IN] [-o OUT] [-t SECONDS] -- CMD [ARG...]\n"); return 2; }
    int ifd = -1, ofd = -1;
    if (in && (ifd = open(in, O_RDONLY | O_CLOEXEC)) < 0) { fprintf(stderr, "tm: %s: %s\n", in, strerror(errno)); return 2; }
    if (out && (ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0) {
        fprintf(stderr, "tm: %s: %s\n", out, strerror(errno));
        return 2;
    }
    FILE *rep = out ? stdout : stderr;
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) { perror("tm: fork"); return 2; }
    if (pid == 0) {
        if (ifd >= 0 && dup2(ifd, 0) < 0) _exit(126);
        if (ofd >= 0 && dup2(ofd, 1) < 0) _exit(126);
        execvp(argv[optind], argv + optind);
        fprintf(stderr, "tm: %s: %s\n", argv[optind], strerror(errno));
        _exit(127);
    }
    int st;
    struct rusage ru;
    pid_t w;
    /* -t: a SIGALRM interrupts wait4 at the limit (TERM), then 5 s later (KILL) */
    int sent = 0, tries = 0;
    if (limit > 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_alarm;          /* no SA_RESTART: wait4 returns EINTR */
        sigaction(SIGALRM, &sa, NULL);
        struct itimerval it = {{0, 0}, {(time_t)limit, (suseconds_t)((limit - (time_t)limit) * 1e6)}};
        setitimer(ITIMER_REAL, &it, NULL);
    }
    for (;;) { /* bounded: 1000 interruptions at most */
        if (alarmed && sent < 2) {
            alarmed = 0;
            kill(pid, sent == 0 ? SIGTERM : SIGKILL);
            sent++;
            struct itimerval it = {{0, 0}, {5, 0}};
            setitimer(ITIMER_REAL, &it, NULL);
        }
        w = wait4(pid, &st, 0, &ru);
        if (w < 0 && errno == EINTR && ++tries < 1000) continue;
        break;
    }
    double t1 = now();
    if (w != pid) { perror("tm: wait4"); return 2; }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    double user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    double cpu = user + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    fprintf(rep, "%.6f %ld %d %.6f %.6f\n", t1 - t0, ru.ru_maxrss, code, cpu, user);
    return 0;
}
