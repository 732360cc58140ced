#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# Hostile files in a spool (spool-layout.md 3.1): a spool holds regular
# files only, and every tool opens them without following a link and
# without blocking.  A FIFO, a link (to a FIFO, to another user's file) or
# any other non-file under a message name is moved aside into corrupt/ by
# the claimer (a rename moves the entry, never what it points to), never
# delivered, never copied; a message that cannot be parsed is buried with a
# reason and the consumer goes on; one that cannot be read is renamed into
# dead/ as it is, loudly.  Every command runs under `timeout 10`, so that a
# regression fails here instead of hanging the suite.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

# a valid name that sorts before anything sent now
B=1700000000000.01M8SJND1PX5THHSH0MK3T7ZK9.0
BID=01M8SJND1PX5THHSH0MK3T7ZK9

setup() { relayd_setup; }
teardown() { relayd_teardown; }

# a queue with one good message after the hostile entry at new/$B
queue_with_good() {
	run -0 timeout 10 mq-send a <<<"good"
}

# corrupt_is KIND: corrupt/ holds exactly one entry, of KIND (test -p, -L ...)
corrupt_is() {
	local f
	f=$(only_file a corrupt) || return 1
	test "$1" "$f" || {
		echo "corrupt/ holds $(stat -c %F "$f"), not $1" >&2
		return 1
	}
	[[ $(basename "$f") =~ $NAME_RE ]]
	[ "$(name_id "$f")" = "$BID" ]
}

# ---- bug 1: a FIFO never blocks a reader ----

@test "a FIFO in new/ is moved to corrupt/, not opened; the next message is delivered" {
	queue_with_good
	mkfifo "$MQ_SPOOL/a/new/$B"
	run --separate-stderr -0 timeout 10 mq-recv a
	[ "$output" = good ]
	check_error mq-recv
	[[ $stderr == "mq-recv: warning: a: "*"is a FIFO, not a message file: moved to corrupt/"* ]]
	corrupt_is -p
	[ "$(count a new)" -eq 0 ]
	[ "$(count a cur)" -eq 0 ]
	[ "$(count a dead)" -eq 0 ]
}

@test "a symbolic link to a FIFO in new/: the link is moved to corrupt/, the FIFO stays" {
	queue_with_good
	mkfifo "$BATS_TEST_TMPDIR/fifo"
	ln -s "$BATS_TEST_TMPDIR/fifo" "$MQ_SPOOL/a/new/$B"
	run --separate-stderr -0 timeout 10 mq-recv -n 0 a
	[ "$output" = good ]
	[[ $stderr == *"is a symbolic link, not a message file"* ]]
	corrupt_is -L
	[ "$(readlink "$(files a corrupt)")" = "$BATS_TEST_TMPDIR/fifo" ]
	[ -p "$BATS_TEST_TMPDIR/fifo" ]
}

@test "mq-recv -c and -x do not block on a FIFO either" {
	queue_with_good
	mkfifo "$MQ_SPOOL/a/new/$B"
	run --separate-stderr -0 timeout 10 mq-recv -c a
	[[ $output == "$MQ_SPOOL/a/cur/"* ]]
	[ -f "$output" ]
	[ ! -L "$output" ] # before reading it: a FIFO would block
	[ "$(body_of "$output")" = good ]
	mkfifo "$MQ_SPOOL/a/new/1700000000001.$BID.0"
	run -0 timeout 10 mq-send a <<<"second"
	run --separate-stderr -0 timeout 10 mq-recv -x cat a
	[ "$output" = second ]
	[ "$(count a corrupt)" -eq 2 ]
}

@test "mq-peek and mq-stat do not hang on a FIFO; mq-stat --repair moves it aside and names it" {
	queue_with_good
	mkfifo "$MQ_SPOOL/a/new/$B"
	ln -s "$MQ_SPOOL/a/new/$B" "$MQ_SPOOL/a/new/1700000000001.$BID.0"
	mkdir -p "$MQ_SPOOL/a/dead"
	mkfifo "$MQ_SPOOL/a/dead/1700000000002.$BID.3"
	# the listing shows messages only
	run --separate-stderr -0 timeout 10 mq-peek a
	[ "${#lines[@]}" -eq 1 ]
	[[ $output == "ready "* ]]
	run --separate-stderr -0 timeout 10 mq-peek --json a
	# one message, whole, by id: a FIFO is refused, not opened
	run --separate-stderr -65 timeout 10 mq-peek -s dead a "$BID"
	check_error mq-peek
	[[ $stderr == *"not a regular file"* ]]
	run --separate-stderr -0 timeout 10 mq-stat a
	[[ $output != *repaired* ]]
	[ -z "$stderr" ]
	run --separate-stderr -0 timeout 10 mq-stat --repair a
	[[ $output == *"repaired a: 2 files that are not messages moved to corrupt/"* ]]
	[[ $output == *"corrupt a: 2 files that are not messages, never delivered, in corrupt/: "*".$BID.0 "*".$BID.0"* ]]
	[ "${#stderr_lines[@]}" -eq 2 ]
	[[ ${stderr_lines[0]} == "mq-stat: warning: a: "*"is a FIFO, not a message file"* ]]
	[ "$(count a new)" -eq 1 ]
	[ "$(count a corrupt)" -eq 2 ]
	run -0 timeout 10 mq-stat --json a
	[[ $output == *'"corrupt": 2'* ]]
	[[ $output == *'"moved_to_corrupt": 0'* ]]
	[[ $output == *'"corrupt_files": ['* ]]
	# still served
	run -0 timeout 10 mq-recv a
	[ "$output" = good ]
}

@test "a FIFO as QUEUE/config: 78 and one line from every command, nothing changed, no hang" {
	queue_with_good
	mkfifo "$MQ_SPOOL/a/config"
	local before
	before=$(snapshot)
	for cmd in "mq-send a" "mq-recv a" "mq-recv -w 1 a" "mq-peek a" "mq-stat a"; do
		run --separate-stderr -78 timeout 10 $cmd <<<"x"
		check_error "${cmd%% *}"
		[[ $stderr == *"a/config: not a regular file"* ]]
	done
	[ "$(snapshot)" = "$before" ]
	# a link is not followed either: it could name another user's file
	rm "$MQ_SPOOL/a/config"
	echo "lease = 1m" >"$BATS_TEST_TMPDIR/elsewhere"
	ln -s "$BATS_TEST_TMPDIR/elsewhere" "$MQ_SPOOL/a/config"
	run --separate-stderr -78 timeout 10 mq-recv a
	check_error mq-recv
	[ "$(count a new)" -eq 1 ]
}

@test "a FIFO as QUEUE/.head is ignored: the messages are delivered in order" {
	queue_with_good
	next_ms
	run -0 timeout 10 mq-send a <<<"second"
	mkfifo "$MQ_SPOOL/a/.head"
	run --separate-stderr -0 timeout 10 mq-recv -n 0 a
	[ "$output" = "good
second" ]
	[ -z "$stderr" ]
}

@test "a FIFO as .lock or as a dedup marker: an error, no hang" {
	mkdir -p "$MQ_SPOOL/a/ids"
	mkfifo "$MQ_SPOOL/a/.lock"
	run --separate-stderr -65 timeout 10 mq-send --id k1 a <<<"x"
	check_error mq-send
	[[ $stderr == *".lock: not a regular file"* ]]
	rm "$MQ_SPOOL/a/.lock"
	mkfifo "$MQ_SPOOL/a/ids/k1"
	run --separate-stderr timeout 10 mq-send --id k1 a <<<"x"
	[ "$status" -ne 124 ]
	check_error mq-send
	[[ $stderr == *"ids/k1: not a regular file"* ]]
}

# ---- bug 2: links are never followed ----

# a file outside the spool that looks like a message, readable by us only
secret_message() {
	printf 'Id: %s\nDate: 2023-11-14T22:13:20.000Z\n\nsecret body\n' "$BID" >"$BATS_TEST_TMPDIR/secret"
	chmod 600 "$BATS_TEST_TMPDIR/secret"
	cp -p "$BATS_TEST_TMPDIR/secret" "$BATS_TEST_TMPDIR/secret.orig"
}

@test "a link to a file that looks like a message is not delivered; the file is untouched, not copied" {
	secret_message
	mkdir -p "$MQ_SPOOL/a/new"
	ln -s "$BATS_TEST_TMPDIR/secret" "$MQ_SPOOL/a/new/$B"
	for mode in "" "-c" "-x cat"; do
		[ -L "$MQ_SPOOL/a/new/$B" ] ||
			mv "$(files a corrupt)" "$MQ_SPOOL/a/new/$B"
		run --separate-stderr -1 timeout 10 mq-recv $mode a
		[ -z "$output" ]
		[[ $stderr == *"is a symbolic link, not a message file: moved to corrupt/"* ]]
		corrupt_is -L
	done
	cmp "$BATS_TEST_TMPDIR/secret" "$BATS_TEST_TMPDIR/secret.orig"
	[ "$(stat -c %a "$BATS_TEST_TMPDIR/secret")" = 600 ]
	# nothing in the spool holds its bytes (grep -r follows no link)
	run grep -rl "secret body" "$MQ_SPOOL"
	[ "$status" -eq 1 ]
	[ "$(count a dead)" -eq 0 ]
}

@test "a link to a file that is no message is not copied into a dead letter" {
	printf 'root only, no header block' >"$BATS_TEST_TMPDIR/private"
	chmod 600 "$BATS_TEST_TMPDIR/private"
	mkdir -p "$MQ_SPOOL/a/new"
	ln -s "$BATS_TEST_TMPDIR/private" "$MQ_SPOOL/a/new/$B"
	run --separate-stderr -1 timeout 10 mq-recv a
	corrupt_is -L
	[ "$(count a dead)" -eq 0 ]
	run grep -rl "root only" "$MQ_SPOOL"
	[ "$status" -eq 1 ]
	# nor when it comes to be buried from cur/ (nacked past max-attempts)
	mv "$(files a corrupt)" "$MQ_SPOOL/a/cur/$(($(now_ms) - 1000)).$BID.5"
	run --separate-stderr -1 timeout 10 mq-recv a
	[[ $stderr == *"is a symbolic link, not a message file"* ]]
	corrupt_is -L
	[ "$(count a dead)" -eq 0 ]
	[ "$(count a cur)" -eq 0 ]
}

# ---- bug 3: a message that cannot be parsed is buried, the consumer goes on ----

@test "mq-recv -f goes on past a malformed message, which goes to dead/ with a reason" {
	for mode in "" "-x cat"; do
		rm -rf "$MQ_SPOOL"
		mkdir -p "$MQ_SPOOL/a/tmp" "$MQ_SPOOL/a/new"
		spawn mq-recv -f $mode a >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err"
		local pid=$BG_PID
		wait_for 10 has_inotify "$pid"
		printf 'no header block at all' >"$MQ_SPOOL/a/tmp/x"
		mv "$MQ_SPOOL/a/tmp/x" "$MQ_SPOOL/a/new/$B"
		wait_for 10 count_is 1 a dead
		timeout 10 mq-send a <<<"after"
		wait_for 10 grep -qx after "$BATS_TEST_TMPDIR/out"
		kill -0 "$pid"
		kill -TERM "$pid"
		wait_pid 10 "$pid"
		[ "$WAIT_STATUS" -eq 0 ]
		local d
		d=$(only_file a dead)
		[ "$(header_of "$d" Dead-Reason)" = "no end of the header block within 256 KiB" ]
		[ "$(tail -n 1 "$d")" = "no header block at all" ]
		grep -q "mq-recv: warning: a: $BID: no end of the header block within 256 KiB: moved to dead/" \
			"$BATS_TEST_TMPDIR/err"
	done
}

# ---- bug 6: an unreadable message ends in dead/, loudly ----

# as_nobody CMD...: CMD as user nobody, with this test's spool
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
		env PATH="$PATH" MQ_SPOOL="$MQ_SPOOL" HOME="$HOME" "$@"
}

@test "a message we may not read (mode 000, not ours) ends in dead/ at once, said on stderr" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as another user"
	run -0 timeout 10 mq-send a <<<"private"
	local msg
	msg=$(only_file a new)
	run -0 timeout 10 mq-send a <<<"public"
	# a spool shared by its directories; the test directory must be passable
	local d=$BATS_TEST_TMPDIR
	while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
	find "$MQ_SPOOL" -type d -exec chmod 777 {} +
	chmod 644 "$(files a new | tail -n 1)"
	chmod 000 "$msg"
	run --separate-stderr -0 as_nobody timeout 10 mq-recv -n 0 a
	[ "$output" = public ]
	check_error mq-recv
	[[ $stderr == "mq-recv: warning: a: $(name_id "$msg"): cannot read "*": Permission denied: moved to dead/"*" as it is, without Dead-* headers" ]]
	local dead
	dead=$(only_file a dead)
	[ "$(name_id "$dead")" = "$(name_id "$msg")" ]
	[ "$(stat -c %a "$dead")" = 0 ]
	[ "$(body_of "$dead")" = private ]
	[ "$(count a new)" -eq 0 ]
	[ "$(count a cur)" -eq 0 ]
	# the same past max-attempts, from an expired lease (a claim by hand)
	local id
	id=$(name_id "$dead")
	mv "$dead" "$MQ_SPOOL/a/cur/$(($(now_ms) - 1000)).$id.5"
	run --separate-stderr -1 as_nobody timeout 10 mq-recv a
	[[ $stderr == *"$id: cannot read "*"Permission denied: moved to dead/"* ]]
	[ "$(count a dead)" -eq 1 ]
	[ "$(count a cur)" -eq 0 ]
}

# ---- bug 8: mq-recv's exit codes are those of mq-recv(1) ----

@test "mq-recv's exit codes: 66 for a spool that is a file, even waiting; no 65 or 2 for bad files" {
	echo not a spool >"$BATS_TEST_TMPDIR/plain"
	for w in "" "-w 1" "-f"; do
		run --separate-stderr -66 timeout 10 mq-recv $w -d "$BATS_TEST_TMPDIR/plain" a
		check_error mq-recv
		[[ $stderr == *"not a directory"* ]]
	done
	mkdir -p "$MQ_SPOOL"
	echo not a queue >"$MQ_SPOOL/fileq"
	run --separate-stderr -66 timeout 10 mq-recv -w 1 fileq
	check_error mq-recv
	[ "$(cat "$MQ_SPOOL/fileq")" = "not a queue" ]
	# a dangling link (was 2, "lease lost"): set aside, nothing received
	mkdir -p "$MQ_SPOOL/a/new"
	ln -s "$BATS_TEST_TMPDIR/nowhere" "$MQ_SPOOL/a/new/$B"
	run --separate-stderr -1 timeout 10 mq-recv a
	check_error mq-recv
	corrupt_is -L
	# no end of the header block (was 65): buried, nothing received
	head -c 300000 /dev/zero | tr '\0' x >"$MQ_SPOOL/a/new/1700000000001.$BID.0"
	run --separate-stderr -1 timeout 10 mq-recv a
	check_error mq-recv
	[ "$(count a dead)" -eq 1 ]
	# ... and the next message is delivered, exit 0
	printf 'yyyyyyyyyy' >"$MQ_SPOOL/a/new/1700000000002.$BID.0"
	run -0 timeout 10 mq-send a <<<"fine"
	run --separate-stderr -0 timeout 10 mq-recv a
	[ "$output" = fine ]
	[ "$(count a dead)" -eq 2 ]
}

# ---- mq-relayd never freezes on such a file ----

@test "mq-relayd: a FIFO and a link in queue a do not stop queue b; SIGTERM stops it" {
	handler h <<'EOF'
cat >>"$T/handled.$MQ_QUEUE"
EOF
	relayd_conf "consume a $T/h" "consume b $T/h"
	start_relayd
	mkfifo "$MQ_SPOOL/a/new/$B"
	ln -s "$MQ_SPOOL/a/new/$B" "$MQ_SPOOL/a/new/1700000000001.$BID.0"
	printf 'no header' >"$MQ_SPOOL/a/tmp/x"
	mv "$MQ_SPOOL/a/tmp/x" "$MQ_SPOOL/a/new/1700000000002.$BID.0"
	run -0 timeout 10 mq-send b <<<"to b"
	run -0 timeout 10 mq-send a <<<"to a"
	wait_for 10 grep -qx "to b" "$T/handled.b"
	wait_for 10 grep -qx "to a" "$T/handled.a"
	[ "$(lines "$T/handled.a")" -eq 1 ]
	[ "$(count a corrupt)" -eq 2 ]
	[ "$(count a dead)" -eq 1 ]
	log_has "a: .* is a FIFO, not a message file: moved to corrupt/"
	log_has "a: .* is a symbolic link, not a message file"
	log_has "a: $BID: no end of the header block"
	stop_relayd 10
	[ "$WAIT_STATUS" -eq 0 ]
}

@test "mq-relayd: a FIFO as its config, a forward's token-file or a TLS file is refused at once, not waited on" {
	mkfifo "$T/fifo"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$T/fifo"
	check_error mq-relayd
	[[ $stderr == *"not a regular file"* ]]
	relayd_conf "forward q http://127.0.0.1:9/" $'\ttoken-file '"$T/fifo"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"token-file $T/fifo: not a regular file"* ]]
	relayd_conf "listen 127.0.0.1:9" $'\ttls-cert '"$T/fifo" $'\ttls-key '"$T/fifo"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"not a regular file"* ]]
}
