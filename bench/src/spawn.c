/* SPDX-License-Identifier: MIT */
/* adapted from shared/peers/src/spawn.c (this project's shared benchmark material) */
/* spawn.c - posix_spawn PROG [ARG...] N times (waiting for each), print: N seconds
 * usage: spawn PROG N [ARG...]
 * stdin, stdout and stderr are inherited by every child.  The floor of anything
 * that runs one process per message from C (mq-recv -x: PROG=/bin/sh -c CMD). */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: spawn PROG N [ARG...]\n"); return 2; }
    long n = atol(argv[2]);
    char **args = calloc((size_t)argc, sizeof *args);
    if (!args) { perror("calloc"); return 1; }
    args[0] = argv[1];
    for (int i = 3; i < argc; i++) args[i - 2] = argv[i];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[1], NULL, NULL, args, environ) != 0) { perror("posix_spawn"); return 1; }
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "child failed\n"); return 1; }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%ld %.6f\n", n, (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
    return 0;
}
