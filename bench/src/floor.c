/* SPDX-License-Identifier: MIT */
/* copied from shared/peers/src (this project's shared benchmark material) */
/* floor.c - physical floor of a maildir-style spool queue.
 *
 * usage: floor DIR N MODE [MSGSIZE] [BATCH]
 *   MODE nofsync : open(O_CREAT|O_EXCL) tmp/X, write, close, rename tmp/X -> new/X;
 *                  claim = rename new/X -> cur/X, open+read+close, ack = unlink cur/X
 *   MODE fsync   : as nofsync, plus fsync(file) before the rename and fsync(new/)
 *                  after it; on the dequeue side fsync(cur/) after the claim rename
 *                  and after the unlink (i.e. every state change is durable)
 *   MODE group   : group commit every BATCH (default 100) messages: write BATCH
 *                  files to tmp/, one syncfs(), rename all into new/, one fsync(new/);
 *                  dequeue: claim+read+ack per message, one fsync(cur/) per BATCH
 *   MODE groupf  : like group but fsync() each of the BATCH files (deferred) instead
 *                  of one syncfs()
 *   MODE synced  : enqueue as group; dequeue as nofsync (no fsync): the claim+ack
 *                  floor of a backlog that is on disk (blocks allocated), which is
 *                  what a durable queue is drained from (added for bench/run)
 *   MODE recycle : like synced, but an ack renames cur/X into free/ instead of
 *                  unlinking it, and an enqueue renames a file from free/ into tmp/
 *                  and overwrites it (write + ftruncate to the new size, no O_TRUNC)
 *                  when free/ has one: in the steady state no inode and no block is
 *                  freed or allocated (the cure tried for ext4's delayed inode reuse
 *                  and for the discard that `-o discard` issues per freed block;
 *                  added for bench/run)
 * DIR must not exist or be empty; tmp/ new/ cur/ are created in it.
 * Prints one line:  N <enqueue s> <dequeue+ack s> <enqueue fsync/syncfs calls> <dequeue calls>
 * All loops are bounded by N.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *arg) {
    fprintf(stderr, "floor: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    exit(1);
}
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}
static void xwrite(int fd, const char *buf, size_t len) {
    size_t off = 0;
    int tries = 0;
    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);
        if (w < 0) { if (errno == EINTR && ++tries < 100) continue; die("write", NULL); }
        off += (size_t)w;
    }
}
static long nsync; /* fsync()/syncfs() calls made in the timed phases */
static void xfsync(int fd, const char *what) { nsync++; if (fsync(fd) != 0) die("fsync", what); }

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: floor DIR N nofsync|fsync|group|groupf [MSGSIZE] [BATCH]\n");
        return 2;
    }
    const char *dir = argv[1];
    long n = atol(argv[2]);
    const char *mode = argv[3];
    size_t msz = argc > 4 ? (size_t)atol(argv[4]) : 1024;
    long batch = argc > 5 ? atol(argv[5]) : 100;
    int m_fsync = !strcmp(mode, "fsync"), m_group = !strcmp(mode, "group"),
        m_groupf = !strcmp(mode, "groupf"), m_none = !strcmp(mode, "nofsync"),
        m_recycle = !strcmp(mode, "recycle"), m_synced = !strcmp(mode, "synced");
    if (m_recycle) m_synced = 1;
    if (m_synced) m_group = 1;
    if (!(m_fsync || m_group || m_groupf || m_none || m_recycle || m_synced) || n <= 0 || msz == 0 || batch <= 0) {
        fprintf(stderr, "floor: bad arguments\n");
        return 2;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) die("mkdir", dir);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0) die("open", dir);
    const char *sub[4] = {"tmp", "new", "cur", "free"};
    for (int i = 0; i < 4; i++)
        if (mkdirat(dfd, sub[i], 0700) != 0 && errno != EEXIST) die("mkdir", sub[i]);
    int tmpfd = openat(dfd, "tmp", O_RDONLY | O_DIRECTORY);
    int newfd = openat(dfd, "new", O_RDONLY | O_DIRECTORY);
    int curfd = openat(dfd, "cur", O_RDONLY | O_DIRECTORY);
    int freefd = openat(dfd, "free", O_RDONLY | O_DIRECTORY);
    DIR *freed = NULL;                  /* recycle: files left in free/ by an earlier run */
    if (m_recycle && (freed = fdopendir(dup(freefd))) == NULL) die("fdopendir", "free");
    if (tmpfd < 0 || newfd < 0 || curfd < 0) die("open subdir", dir);
    if (fsync(dfd) != 0) die("fsync", dir); /* setup, not timed or counted */

    char *msg = malloc(msz), *rbuf = malloc(msz + 1);
    int *gfd = calloc((size_t)batch, sizeof(int));
    char *gname = calloc((size_t)batch, 64);
    if (!msg || !rbuf || !gfd || !gname) die("malloc", NULL);
    for (size_t i = 0; i < msz; i++) msg[i] = 'a' + (char)(i % 26);
    long pid = (long)getpid();
    char name[64];

    /* ---------------- enqueue ---------------- */
    int grp = m_group || m_groupf;
    double t0 = now();
    for (long i = 0; i < n; i += grp ? batch : 1) {
        long k = grp ? (n - i < batch ? n - i : batch) : 1;
        for (long j = 0; j < k; j++) {
            char *nm = grp ? gname + j * 64 : name;
            snprintf(nm, 64, "%ld.%ld.M%08ld", (long)time(NULL), pid, i + j);
            int fd = -1, reused = 0;
            if (freed) { /* recycle: reuse an inode from free/ when there is one */
                struct dirent *fe;
                while ((fe = readdir(freed)) != NULL && fe->d_name[0] == '.') {}
                if (fe == NULL) { closedir(freed); freed = NULL; }
                else {
                    if (renameat(freefd, fe->d_name, tmpfd, nm) != 0) die("rename free", fe->d_name);
                    fd = openat(tmpfd, nm, O_WRONLY | O_CLOEXEC);
                    if (fd < 0) die("open recycled", nm);
                    reused = 1;
                }
            }
            if (fd < 0) fd = openat(tmpfd, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) die("open tmp", nm);
            memcpy(msg, nm, strlen(nm) < msz ? strlen(nm) : msz); /* unique content */
            xwrite(fd, msg, msz);
            if (reused && ftruncate(fd, (off_t)msz) != 0) die("ftruncate", nm);
            if (m_fsync) xfsync(fd, nm);
            if (m_groupf) { gfd[j] = fd; continue; }
            if (close(fd) != 0) die("close", nm);
            if (!grp) {
                if (renameat(tmpfd, nm, newfd, nm) != 0) die("rename", nm);
                if (m_fsync) xfsync(newfd, "new/");
            }
        }
        if (grp) {
            if (m_group && (nsync++, syncfs(tmpfd) != 0)) die("syncfs", dir);
            if (m_groupf)
                for (long j = 0; j < k; j++) {
                    xfsync(gfd[j], "tmp file");
                    if (close(gfd[j]) != 0) die("close", NULL);
                }
            for (long j = 0; j < k; j++)
                if (renameat(tmpfd, gname + j * 64, newfd, gname + j * 64) != 0) die("rename", gname + j * 64);
            xfsync(newfd, "new/");
        }
    }
    double t1 = now();
    long enq_sync = nsync;
    nsync = 0;

    /* ---------------- claim + read + ack ---------------- */
    DIR *d = fdopendir(dup(newfd));
    if (!d) die("fdopendir", "new");
    rewinddir(d);
    struct dirent *e;
    long done = 0;
    while ((e = readdir(d)) != NULL && done < n) {
        if (e->d_name[0] == '.') continue;
        if (renameat(newfd, e->d_name, curfd, e->d_name) != 0) die("claim rename", e->d_name);
        if (m_fsync) xfsync(curfd, "cur/");
        int fd = openat(curfd, e->d_name, O_RDONLY | O_CLOEXEC);
        if (fd < 0) die("open cur", e->d_name);
        ssize_t r = read(fd, rbuf, msz + 1);
        if (r != (ssize_t)msz) { fprintf(stderr, "floor: short read %zd\n", r); return 1; }
        close(fd);
        if (m_recycle) {
            if (renameat(curfd, e->d_name, freefd, e->d_name) != 0) die("rename to free", e->d_name);
        } else if (unlinkat(curfd, e->d_name, 0) != 0) die("unlink", e->d_name);
        if (m_fsync) xfsync(curfd, "cur/");
        done++;
        if ((m_group || m_groupf) && !m_synced && (done % batch == 0)) xfsync(curfd, "cur/");
    }
    if ((m_group || m_groupf) && !m_synced && (done % batch != 0)) xfsync(curfd, "cur/");
    closedir(d);
    double t2 = now();
    if (done != n) { fprintf(stderr, "floor: dequeued %ld of %ld\n", done, n); return 1; }
    printf("%ld %.6f %.6f %ld %ld\n", n, t1 - t0, t2 - t1, enq_sync, nsync);
    return 0;
}
