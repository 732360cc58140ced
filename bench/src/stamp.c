/* SPDX-License-Identifier: MIT */
/* stamp.c - the handler of bench/run's mq-relayd latency case.
 *
 * usage: stamp  (run by mq-relayd as `stamp >>FILE`, the message body on stdin)
 * Prints the wall-clock time (CLOCK_REALTIME, microseconds, the clock of bash's
 * $EPOCHREALTIME) taken first thing in main, then reads stdin to its end so the
 * writer of the body never sees a broken pipe.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char buf[4096];
    for (int i = 0; i < 1 << 16 && read(0, buf, sizeof buf) > 0; i++) {}
    printf("%lld.%06ld\n", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    return 0;
}
