/* SPDX-License-Identifier: MIT */
/* firstfloor.c - the syscall floor of "time to the first message" from a backlog.
 *
 * usage: firstfloor QDIR
 * One process does only what any claimer of the oldest message must do: read the
 * whole of QDIR/new/ (getdents), keep the lexicographically smallest name not
 * starting with '.', rename it into QDIR/cur/, open, read, write the body to
 * stdout, unlink it.  Run under tm, its wall time (exec included) is what
 * `mq-recv QUEUE` is compared with.  Exit 1 when new/ holds nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what) { fprintf(stderr, "firstfloor: %s: %s\n", what, strerror(errno)); exit(74); }

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: firstfloor QDIR\n"); return 64; }
    int qfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (qfd < 0) die(argv[1]);
    int newfd = openat(qfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int curfd = openat(qfd, "cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (newfd < 0 || curfd < 0) die("open new/ or cur/");
    DIR *d = fdopendir(dup(newfd));
    if (!d) die("fdopendir");
    char best[256] = "";
    struct dirent *e;
    long seen = 0;
    while ((e = readdir(d)) != NULL) {            /* bounded by the directory size */
        if (e->d_name[0] == '.') continue;
        seen++;
        if (!best[0] || strcmp(e->d_name, best) < 0) snprintf(best, sizeof best, "%s", e->d_name);
    }
    closedir(d);
    if (!seen) return 1;
    if (renameat(newfd, best, curfd, best) != 0) die("rename");
    int fd = openat(curfd, best, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open");
    static char buf[1 << 16];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) die("read");
    close(fd);
    if (write(1, buf, (size_t)r) != r) die("write");
    if (unlinkat(curfd, best, 0) != 0) die("unlink");
    return 0;
}
