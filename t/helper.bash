# SPDX-License-Identifier: MIT
#
# Shared setup for the bats tests: puts the freshly built bin/ first in PATH,
# gives every test its own spool under $BATS_TEST_TMPDIR (so nothing touches
# /var/spool/mq or $HOME), and provides small helpers for looking at queue
# directories and for bounded waiting.  Every wait here has a deadline: the
# suite also runs under ASan/UBSan on a loaded 2-core machine, so waits are
# generous, but a test never hangs.

MQ_BIN=$(cd "$BATS_TEST_DIRNAME/../bin" 2>/dev/null && pwd) ||
	MQ_BIN="$BATS_TEST_DIRNAME/../bin"
export PATH="$MQ_BIN:$PATH"

# The name grammar of a message file: T.ID.A[.E] (see brief / mq-spool(5)).
ULID_RE='[0-9A-HJKMNP-TV-Z]{26}'
NAME_RE="^[0-9]{13}\.$ULID_RE\.[0-9]+(\.[0-9]{13})?\$"

common_setup() {
	export MQ_SPOOL="$BATS_TEST_TMPDIR/spool"
	# Never fall back to a default spool outside the test directory.
	export HOME="$BATS_TEST_TMPDIR/home"
	export XDG_STATE_HOME="$BATS_TEST_TMPDIR/xdg-state"
	export TZ=UTC LC_ALL=C
	PIDFILE="$BATS_TEST_TMPDIR/.bg-pids"
	: >"$PIDFILE"
}

common_teardown() {
	local pid
	# Kill only what this test started, by pid.
	if [ -f "$PIDFILE" ]; then
		while read -r pid; do
			kill -9 "$pid" 2>/dev/null || true
		done <"$PIDFILE"
	fi
}

setup() { common_setup; }
teardown() { common_teardown; }

# spawn CMD...: start CMD in the background with bats' fd 3 closed (otherwise
# bats waits for it), remember its pid for teardown; the pid is in $BG_PID.
# Stdin is passed on explicitly: without job control a background command
# would otherwise read /dev/null.
spawn() {
	"$@" 3>&- <&0 &
	BG_PID=$!
	echo "$BG_PID" >>"$PIDFILE"
}

# now_ms: wall clock in milliseconds, without forking.
now_ms() {
	local t=${EPOCHREALTIME//[!0-9]/}
	echo "${t:0:13}"
}

# next_ms: return once the millisecond clock has moved on.  Separate
# mq-send processes are ordered by their send time in ms; ids are only
# monotonic within one process, so two sends in the same ms from two
# processes may sort either way.  FIFO tests call this between sends.
next_ms() {
	local t0
	t0=$(now_ms)
	while [ "$(now_ms)" -le "$t0" ]; do :; done
}

# time_past MS: the clock is past MS (a time in ms since the epoch).
time_past() { [ "$(now_ms)" -gt "$1" ]; }

# wait_for SECONDS CMD...: poll CMD every 20 ms until it succeeds; fail
# (return 1) after SECONDS.
wait_for() {
	local timeout=$1
	shift
	local deadline=$(($(now_ms) + timeout * 1000))
	until "$@"; do
		if [ "$(now_ms)" -ge "$deadline" ]; then
			echo "wait_for: timed out after ${timeout}s: $*" >&2
			return 1
		fi
		sleep 0.02
	done
}

# wait_pid SECONDS PID: wait until PID exits (bounded); its status is in
# $WAIT_STATUS.  Fails if it is still running after SECONDS.
wait_pid() {
	wait_for "$1" pid_gone "$2" || return 1
	WAIT_STATUS=0
	wait "$2" || WAIT_STATUS=$?
}

pid_gone() { ! kill -0 "$1" 2>/dev/null || is_zombie "$1"; }
is_zombie() { [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# has_inotify PID: the process holds an inotify descriptor (it is waiting).
has_inotify() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[ "$(readlink "$fd" 2>/dev/null)" = "anon_inode:inotify" ] && return 0
	done
	return 1
}

qdir() { echo "$MQ_SPOOL/$1"; }

# files Q STATE: the message files (names not starting with '.') of a state
# directory, sorted, one full path per line; nothing if it does not exist.
files() {
	local d="$MQ_SPOOL/$1/$2"
	[ -d "$d" ] || return 0
	find "$d" -mindepth 1 -maxdepth 1 ! -name '.*' | LC_ALL=C sort
}

# count Q STATE: number of message files in a state directory.
count() {
	files "$1" "$2" | wc -l | tr -d ' '
}

# count_is N Q STATE: for wait_for.
count_is() { [ "$(count "$2" "$3")" -eq "$1" ]; }

# only_file Q STATE: the path of the single file in a state directory; fails
# unless there is exactly one.
only_file() {
	local n
	n=$(count "$1" "$2")
	if [ "$n" -ne 1 ]; then
		echo "expected exactly one file in $1/$2, found $n:" >&2
		files "$1" "$2" >&2
		return 1
	fi
	files "$1" "$2"
}

# Fields of a message file name T.ID.A[.E].
name_time() { basename "$1" | cut -d. -f1; }
name_id() { basename "$1" | cut -d. -f2; }
name_attempts() { basename "$1" | cut -d. -f3; }
is_msg_name() { [[ $(basename "$1") =~ $NAME_RE ]]; }

# body_of FILE: the bytes after the header block (the first empty line).
body_of() {
	local n
	n=$(sed -n '1,/^$/p' "$1" | wc -c)
	tail -c +$((n + 1)) "$1"
}

# header_of FILE NAME: the value of the first header NAME in FILE.
header_of() {
	sed -n '/^$/q; p' "$1" | sed -n "s/^$2: //p" | head -n 1
}

# config Q LINE...: write LINE... to QUEUE/config (creates the queue dir as
# an operator would with mkdir).
config() {
	local q=$1
	shift
	mkdir -p "$MQ_SPOOL/$q"
	printf '%s\n' "$@" >>"$MQ_SPOOL/$q/config"
}

# messages_anywhere Q: number of message files in every state (tmp included).
# The directories are counted one after another, so a message that moves
# between two of them meanwhile (a claim, a claim given back by a retrying
# forward) is counted twice or not at all: count until two counts agree.
messages_anywhere() {
	local s n prev=-1 i
	for i in 1 2 3 4 5 6 7 8; do
		n=0
		for s in tmp new cur dead "done"; do
			n=$((n + $(count "$1" "$s")))
		done
		[ "$n" = "$prev" ] && break
		prev=$n
	done
	echo "$n"
}

# check_error PROG: after `run --separate-stderr`, stderr is exactly one line
# starting with "PROG: ".
check_error() {
	if [ "${#stderr_lines[@]}" -ne 1 ] || [[ ${stderr_lines[0]} != "$1: "* ]]; then
		echo "expected one stderr line starting with '$1: ', got:" >&2
		printf '%s\n' "$stderr" >&2
		return 1
	fi
}

# snapshot: everything under the test directory except bats' own files, for
# "nothing was created" checks.
snapshot() {
	find "$BATS_TEST_TMPDIR" ! -name 'separate-stderr-*' ! -name '.bg-pids' |
		LC_ALL=C sort
}

# small_disk: a 1 MiB tmpfs at $SMALL, for a disk that fills (root only: the
# test is skipped elsewhere).  The test's teardown unmounts it.
small_disk() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to mount a tmpfs"
	SMALL="$BATS_TEST_TMPDIR/small"
	mkdir "$SMALL"
	mount -t tmpfs -o size=1m tmpfs "$SMALL" 2>/dev/null || {
		SMALL=
		skip "mount does not work here"
	}
}
