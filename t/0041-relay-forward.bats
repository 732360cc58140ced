#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# The relay end to end: two or three real mq-relayd processes, each a "node"
# with its own spool, configuration and log under $BATS_TEST_TMPDIR/NODE/,
# talking HTTP over 127.0.0.1 (or over a veth pair between two network
# namespaces).  A `forward` on node A PUTs each message to node B's
# `listen`er, or POSTs a backlog in batches; what is checked is what the spools hold afterwards: every
# message at B exactly once, A empty, and the failure classes of the
# forward (peer down: uncounted; 401/403: paused; other 4xx and 508: dead
# letter with the status as its reason).  Forwards use `backoff 100ms..1s`
# so that a retry comes quickly.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper
load relay_helper # free_port, make_certs

setup() {
	relayd_setup
	declare -gA NODE_PID=()
	NETNS=()
	PORTS_TAKEN=" "
}

teardown() {
	local ns n
	relayd_teardown # the daemons (RELAYD_PIDS) and their handlers, by pid
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	if [ -z "${BATS_TEST_COMPLETED:-}" ]; then
		for n in "$T"/*/log; do
			[ -f "$n" ] || continue
			echo "--- $n:" >&2
			tail -n 40 "$n" >&2
		done
	fi
}

# ---- nodes: one mq-relayd each, in $T/NODE/ ----

# pick_port VAR: a free port (free_port of relay_helper.bash), not one
# handed out before in this test, in VAR.
pick_port() {
	local p i
	for i in 1 2 3 4 5 6 7 8; do
		p=$(free_port) || return 1
		[[ $PORTS_TAKEN == *" $p "* ]] || break
	done
	PORTS_TAKEN+="$p "
	printf -v "$1" '%s' "$p"
}

# node_conf NODE LINE...: $T/NODE/relayd.conf: the spool $T/NODE/spool, the
# Hop name NODE, a safety rescan too slow to hide a missed event, LINE...
node_conf() {
	local n=$1
	shift
	mkdir -p "$T/$n/spool"
	{
		echo "# written by $BATS_TEST_NAME for node $n"
		echo "spool $T/$n/spool"
		echo "name $n"
		echo "rescan 60s"
		printf '%s\n' "$@"
	} >"$T/$n/relayd.conf"
}

# node_start NODE [WRAPPER...]: start NODE's mq-relayd (under WRAPPER, such
# as `ip netns exec NS`, if given) with fds 0 and 3 closed and stderr
# appended to $T/NODE/log; wait until it has logged its start.
node_start() {
	local n=$1 before deadline pid
	shift
	before=$(nlog_count "$n" 'started:')
	"$@" mq-relayd -c "$T/$n/relayd.conf" 3>&- </dev/null 2>>"$T/$n/log" &
	pid=$!
	NODE_PID[$n]=$pid
	RELAYD_PIDS+=("$pid")
	deadline=$(($(now_ms) + 20000))
	until [ "$(nlog_count "$n" 'started:')" -gt "$before" ]; do
		if pid_gone "$pid" || time_past "$deadline"; then
			echo "mq-relayd of node $n did not start:" >&2
			cat "$T/$n/log" >&2
			return 1
		fi
		sleep 0.02
	done
}

# node_kill9 NODE: SIGKILL NODE's daemon and reap it.
node_kill9() {
	local pid=${NODE_PID[$1]}
	kill -9 "$pid"
	{ wait "$pid"; } 2>/dev/null || true
}

node_hup() { kill -HUP "${NODE_PID[$1]}"; }

# nlog_count NODE PATTERN, nlog_has NODE PATTERN: NODE's log (grep -E).
nlog_count() {
	local c
	c=$(grep -cE -- "$2" "$T/$1/log" 2>/dev/null) || true
	echo "${c:-0}"
}
nlog_has() { grep -qE -- "$2" "$T/$1/log" 2>/dev/null; }
nlog_count_gt() { [ "$(nlog_count "$1" "$2")" -gt "$3" ]; }

# on NODE CMD...: CMD with NODE's spool as $MQ_SPOOL (commands and the
# helper.bash functions alike).
on() {
	local n=$1
	shift
	MQ_SPOOL="$T/$n/spool" "$@"
}

keyed_is() { [ "$(ls "$T/B/spool/q/keys/a" | wc -l)" -eq "$1" ]; } # keyed_is N: of B's key a
count_ge() { [ "$(count "$2" "$3")" -ge "$1" ]; }
anywhere_is() { [ "$(on "$1" messages_anywhere "${3:-q}")" -eq "$2" ]; } # anywhere_is NODE N [Q]: of queue Q (q)

# ids_in Q STATE: the ids of the messages in a state directory, sorted.
ids_in() { files "$1" "$2" | sed 's|.*/||' | cut -d. -f2 | LC_ALL=C sort; }

# uncounted Q: every message of Q is in new/ or cur/ and no file name in
# new/ carries an attempt (a peer that cannot take a message costs none);
# nothing is dead.
uncounted() {
	local f bad=0
	for f in $(files "$1" new); do
		if [ "$(name_attempts "$f")" != 0 ]; then
			echo "counted: $f" >&2
			bad=1
		fi
	done
	if [ "$(count "$1" dead)" -ne 0 ]; then
		echo "dead letters in $1:" >&2
		files "$1" dead >&2
		bad=1
	fi
	return $bad
}

# fwd PORT QUEUE FIELD: FIELD of QUEUE's forward in GET /v1/stats of the
# listener on 127.0.0.1:PORT.
fwd() {
	curl -sf --max-time 5 "http://127.0.0.1:$1/v1/stats" |
		python3 -c 'import json, sys
d = json.load(sys.stdin)
print(next(f.get(sys.argv[2]) for f in d["forwards"] if f["queue"] == sys.argv[1]))' "$2" "$3"
}
fwd_is() { [ "$(fwd "$1" "$2" "$3")" = "$4" ]; }
fwd_ge() { [ "$(fwd "$1" "$2" "$3")" -ge "$4" ]; }

# received_once NODE Q IDS: the messages of Q's new/ on NODE are the ids of
# the file IDS, each exactly once.
received_once() {
	on "$1" ids_in "$2" new >"$T/at-$1"
	each_once "$3" "$T/at-$1"
}

FWD_OPTS=("	backoff 100ms..1s")

# ---- 1. the plain case ----

@test "relay: 200 lines sent on A are consumed on B, each once, with B's Hop; A ends empty" {
	local pb
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb" \
		"consume q printf '%s %s %s\\n' \"\$MQ_ID\" \"\$MQ_HDR_HOP\" \"\$(cat)\" >>'$T/got'" \
		"	concurrency 4"
	node_start B
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_start A
	seq 200 | on A mq-send -l -i q >"$T/ids"
	[ "$(lines "$T/ids")" -eq 200 ]
	wait_for 30 lines_ge 200 "$T/got"
	wait_for 10 on A queue_empty q
	wait_for 10 on B queue_empty q
	# every id once, each body once, B's Hop last on every message
	cut -d' ' -f1 "$T/got" >"$T/got-ids"
	each_once "$T/ids" "$T/got-ids"
	diff <(seq 200) <(cut -d' ' -f3 "$T/got" | sort -n)
	[ "$(cut -d' ' -f2 "$T/got" | sort -u)" = B ]
	! nlog_has A 'dead letter|PAUSED'
}

# ---- 1a. batches (PROTOCOL.md 4a) ----

# answers_2xx PORT: the 2xx answers of the listener on 127.0.0.1:PORT.
answers_2xx() {
	curl -sf --max-time 5 "http://127.0.0.1:$1/metrics" |
		sed -n 's/^spoolmq_http_answers_total{status="2xx"} //p'
}

@test "relay: a backlog goes in batches: 1000 lines at B once, in a few dozen requests, not a thousand" {
	local pa pb
	pick_port pa
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	seq 1000 | on A mq-send -l -i q >"$T/ids" # a backlog before A starts
	node_start A
	wait_for 30 on A queue_empty q
	received_once B q "$T/ids"
	fwd_ge "$pa" q forwarded 1000
	# 64 a batch by default: 16 of them, give or take a short one
	fwd_ge "$pa" q batches 15
	[ "$(fwd "$pa" q batches)" -le 40 ]
	[ "$(answers_2xx "$pb")" -le 40 ]
	# a message alone still goes by PUT
	local b
	b=$(fwd "$pa" q batches)
	echo alone | on A mq-send -i q >"$T/alone"
	wait_for 10 on B count_is 1001 q new
	fwd_is "$pa" q batches "$b"
	received_once B q <(cat "$T/ids" "$T/alone")
}

@test "relay: batch 1 sends a PUT for each message: as many answers as messages, no batch" {
	local pa pb
	pick_port pa
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}" "	batch 1"
	seq 200 | on A mq-send -l -i q >"$T/ids"
	node_start A
	wait_for 30 on A queue_empty q
	received_once B q "$T/ids"
	fwd_is "$pa" q batches 0
	[ "$(answers_2xx "$pb")" -ge 200 ]
}

@test "relay: a bad batch option is exit 78 naming it" {
	node_conf A "forward q http://127.0.0.1:1" "	batch 0"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$T/A/relayd.conf"
	check_error mq-relayd
	[[ $stderr == *batch* ]]
	node_conf A "forward q http://127.0.0.1:1" "	batch 1025"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$T/A/relayd.conf"
	node_conf A "forward q http://127.0.0.1:1" "	batch 1024"
	run -0 timeout 10 mq-relayd -n -c "$T/A/relayd.conf"
}

# put_only_peer PORT [CODE]: a peer as PROTOCOL.md section 15 describes one,
# that knows PUT only: each file synced into $T/peer/ under its id (201),
# 200 for an id held, 404 for any other path; a POST (/batch among them) is
# answered CODE (default 404) and stored nowhere.
put_only_peer() {
	mkdir -p "$T/peer"
	cat >"$T/peer.py" <<'PY'
import http.server, os, re, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def answer(self, code, text):
        b = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        m = re.fullmatch(r"/v1/queues/q/messages/([0-9A-Z]{26})", self.path)
        if not m:
            return self.answer(404, "no such resource")
        p = os.path.join(sys.argv[2], m.group(1))
        if os.path.exists(p):
            return self.answer(200, "held already")
        with open(p + ".tmp", "wb") as f:
            f.write(body)
            os.fsync(f.fileno())
        os.rename(p + ".tmp", p)
        self.answer(201, "stored")
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.answer(int(sys.argv[3]), "not here")
    def log_message(self, *a):
        pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 512  # a forward opens up to concurrency connections at once
S(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
	python3 "$T/peer.py" "$1" "$T/peer" "${2:-404}" 3>&- &
	RELAYD_PIDS+=("$!")
	wait_http "http://127.0.0.1:$1/"
}

@test "relay: a peer that takes no batches (404 on /batch) is sent a PUT a message: all once, logged once" {
	local pa pp
	pick_port pa
	pick_port pp
	put_only_peer "$pp"
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pp" "${FWD_OPTS[@]}"
	seq 300 | on A mq-send -l -i q >"$T/ids"
	node_start A
	wait_for 30 on A queue_empty q
	ls "$T/peer" | LC_ALL=C sort >"$T/at-peer"
	each_once "$T/ids" "$T/at-peer"
	on A count_is 0 q dead
	[ "$(nlog_count A 'the peer takes no batches \(HTTP 404\): a PUT each from now on')" -eq 1 ]
	fwd_ge "$pa" q forwarded 300
	# the batches in flight together when the first answer came (two of 64
	# in concurrency 128), no more; and it stays so: the next backlog goes
	# by PUT without asking again
	local b
	b=$(fwd "$pa" q batches)
	[ "$b" -ge 1 ] && [ "$b" -le 2 ]
	seq 100 | on A mq-send -l -i q >>"$T/ids"
	wait_for 30 on A queue_empty q
	ls "$T/peer" | LC_ALL=C sort >"$T/at-peer"
	each_once "$T/ids" "$T/at-peer"
	fwd_is "$pa" q batches "$b"
}

@test "relay: a batch answered 413 (a proxy's limit) or 201 for the whole body buries nothing and acks nothing unanswered: a PUT each" {
	local pa pp code
	for code in 413 201; do
		pick_port pa
		pick_port pp
		rm -rf "$T/peer" "$T/A"
		put_only_peer "$pp" "$code"
		node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pp" "${FWD_OPTS[@]}"
		seq 100 | on A mq-send -l -i q >"$T/ids"
		node_start A
		wait_for 30 on A queue_empty q
		ls "$T/peer" | LC_ALL=C sort >"$T/at-peer"
		each_once "$T/ids" "$T/at-peer" # each one stored by its own PUT, none only "acked"
		on A count_is 0 q dead
		nlog_has A "the peer takes no batches \\(HTTP $code\\)"
		node_kill9 A
	done
}

# ---- 2. the receiver is down, then up ----

@test "relay: with the receiver down messages wait on A uncounted, then flow once it starts" {
	local pa pb
	pick_port pa
	pick_port pb
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_start A
	seq 20 | on A mq-send -l -i q >"$T/ids"
	wait_for 10 nlog_has A 'cannot take messages now'
	# it goes on trying (three refusals in a row at least), counting nothing
	wait_for 10 fwd_ge "$pa" q failures_in_a_row 3
	fwd_is "$pa" q state retrying
	wait_for 5 on A count_is 20 q new # all given back while it rests
	on A uncounted q
	wait_for 5 anywhere_is A 20

	node_conf B "listen 127.0.0.1:$pb" "consume q echo \"\$MQ_ID\" >>'$T/got'"
	node_start B
	wait_for 20 lines_ge 20 "$T/got"
	wait_for 10 on A queue_empty q
	wait_for 10 on B queue_empty q
	each_once "$T/ids" "$T/got"
	nlog_has A 'the peer takes messages again'
	wait_for 5 fwd_is "$pa" q state idle
}

# ---- 3, 4. kill -9 in the middle of a stream ----

@test "relay: kill -9 of the receiver mid-stream, five times, restarted: all 2000 at B once, A empty" {
	local pb left k noticed
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_start A
	seq 2000 | on A mq-send -l -i q >"$T/ids"
	[ "$(lines "$T/ids")" -eq 2000 ]
	# five crashes, each while messages are flowing: a crash costs no
	# message, and a transfer retried after it makes no second copy
	for k in 1 2 3 4 5; do
		wait_for 30 on B count_ge $((k * 300)) q new
		noticed=$(nlog_count A 'cannot take messages now')
		node_kill9 B
		left=$(on A messages_anywhere q)
		echo "kill $k: $(on B count q new) at B, $left left on A" >&2
		[ "$left" -gt 0 ] # really in the middle of the stream
		wait_for 10 nlog_count_gt A 'cannot take messages now' "$noticed"
		node_start B
	done
	wait_for 60 on A queue_empty q
	received_once B q "$T/ids"
	! nlog_has A 'dead letter'
}

# The window the test above hits by chance, hit on purpose: strace(1) kills
# B at its first fsync(2), which (as the commit is written now) is the one
# of new/ right after the rename of the first message received, before its
# received/ID marker is written and before the answer.  Wherever the kill
# lands, the message must end up at B exactly once.
@test "relay: a receiver killed after storing a message, before its answer, stores no second copy on the retry" {
	local pb id
	strace -f -qq -o /dev/null true 2>/dev/null || skip "needs a working strace for the fault injection"
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	# the queue exists: no fsync for making it
	mkdir -p "$T/B/spool/q/tmp" "$T/B/spool/q/cur" "$T/B/spool/q/dead" "$T/B/spool/q/new"
	node_start B strace -f -qq -o /dev/null -e trace=fsync -e inject=fsync:signal=KILL:when=1
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_start A
	id=$(echo once | on A mq-send -i q)
	echo "$id" >"$T/ids"
	b_gone_or_done() { pid_gone "${NODE_PID[B]}" || on A queue_empty q; }
	wait_for 10 b_gone_or_done
	if pid_gone "${NODE_PID[B]}"; then
		{ wait "${NODE_PID[B]}"; } 2>/dev/null || true
		echo "B killed with $(on B count q new) in new/, marker:" \
			"$(ls "$T/B/spool/q/received" 2>/dev/null | grep -c "$id")" >&2
		node_start B
	fi
	wait_for 20 on A queue_empty q
	received_once B q "$T/ids"
}

@test "relay: kill -9 of the sender mid-stream, restarted: all 2000 at B once, A empty" {
	local pb left
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	# a short lease: what the killed sender held in cur/ comes back soon
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}" "	lease 2s"
	node_start A
	seq 2000 | on A mq-send -l -i q >"$T/ids"
	wait_for 30 on B count_ge 200 q new
	node_kill9 A
	left=$(on A messages_anywhere q)
	echo "at the kill: $(on B count q new) at B, $left left on A ($(on A count q cur) claimed)" >&2
	[ "$left" -gt 0 ]
	node_start A
	wait_for 60 on A queue_empty q
	received_once B q "$T/ids"
	! nlog_has A 'dead letter'
}

# ---- 5. 401 and 403 pause the forward ----

@test "relay: 401 and 403 pause the forward (messages stay in new/, uncounted); a fixed token and SIGHUP let them flow" {
	local pa pb before
	pick_port pa
	pick_port pb
	mkdir -p "$T/B" "$T/A"
	printf '%s\n' "# token queues" "good-token q" "other-token other" >"$T/B/tokens"
	echo wrong-token >"$T/A/token"
	chmod 600 "$T/B/tokens" "$T/A/token"
	node_conf B "listen 127.0.0.1:$pb" "	token-file $T/B/tokens"
	node_start B
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}" \
		"	token-file $T/A/token"
	node_start A
	seq 10 | on A mq-send -l -i q >"$T/ids"

	# an unknown token: 401
	wait_for 10 nlog_has A 'HTTP 401.*PAUSED'
	wait_for 5 fwd_is "$pa" q state paused
	wait_for 5 on A count_is 10 q new
	on A uncounted q
	[ "$(on B messages_anywhere q)" -eq 0 ]
	# paused means paused: no try within a second (the pause is 60 s)
	before=$(nlog_count A PAUSED)
	sleep 1
	[ "$(nlog_count A PAUSED)" -eq "$before" ]
	on A count_is 10 q new

	# a token B knows, but not for this queue: 403
	echo other-token >"$T/A/token"
	node_hup A
	wait_for 10 nlog_has A 'HTTP 403.*PAUSED'
	wait_for 5 fwd_is "$pa" q state paused
	wait_for 5 on A count_is 10 q new
	on A uncounted q
	[ "$(on B messages_anywhere q)" -eq 0 ]

	# the right one
	echo good-token >"$T/A/token"
	node_hup A
	wait_for 20 on B count_is 10 q new
	wait_for 10 on A queue_empty q
	received_once B q "$T/ids"
	wait_for 5 fwd_is "$pa" q state idle
}

# ---- 6. a permanent refusal buries ----

# over_max_size [backlog]: three messages to a B of max-size 10, one of
# them larger; with "backlog" sent before A starts, so they go in one batch.
over_max_size() {
	local pa pb big dead
	pick_port pa
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	on B config q "max-size = 10"
	node_start B
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	[ "${1:-}" = backlog ] || node_start A
	echo small-1 | on A mq-send -i q >"$T/ids"
	big=$(echo this body is longer than ten bytes | on A mq-send -i q)
	echo small-2 | on A mq-send -i q >>"$T/ids"
	[ "${1:-}" != backlog ] || node_start A
	wait_for 20 on A count_is 1 q dead
	wait_for 20 on B count_is 2 q new
	wait_for 10 on A count_is 0 q new
	dead=$(on A only_file q dead)
	[ "$(name_id "$dead")" = "$big" ]
	[[ $(header_of "$dead" Dead-Reason) == "HTTP 413"* ]]
	[ "$(body_of "$dead")" = "this body is longer than ten bytes" ]
	received_once B q "$T/ids"
	# one by one: a PUT each; a backlog: the three in one batch
	fwd_is "$pa" q batches "$([ "${1:-}" = backlog ] && echo 1 || echo 0)"
}

@test "relay: a message over B's max-size is buried on A with Dead-Reason HTTP 413; smaller ones pass" {
	over_max_size
}

@test "relay: in one batch, each message is settled by its own line: the one over max-size buried (413), the others acked" {
	over_max_size backlog
}

# ---- 7. a full receiver: 429, retried uncounted ----

@test "relay: 429 from a full queue on B is retried uncounted (no dead letter with max-attempts 1) until B is drained" {
	local pa pb
	pick_port pa
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	on B config q "max-length = 1"
	node_start B
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}" \
		"	max-attempts 1"
	node_start A
	echo first | on A mq-send -i q >"$T/ids"
	wait_for 10 on B count_is 1 q new
	# B is full now (and says Retry-After: 5, so two more messages only)
	seq 2 | on A mq-send -l -i q >>"$T/ids"
	wait_for 10 nlog_has A 'HTTP 429'
	wait_for 5 fwd_is "$pa" q state retrying
	wait_for 5 on A count_is 2 q new
	on A uncounted q
	on B count_is 1 q new
	# drain B as its messages come: the rest arrive (one at a time or not)
	spawn mq-recv -d "$T/B/spool" -f q >"$T/drained"
	wait_for 40 lines_ge 3 "$T/drained"
	wait_for 10 on A queue_empty q
	diff <(printf '%s\n' 1 2 first) <(sort "$T/drained")
	! nlog_has A 'dead letter'
}

@test "relay: a forward wider than B's max-per-address halves its transfers instead of resting: 300 arrive once, quickly, uncounted" {
	local pa pb
	pick_port pa
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb" "	max-per-address 4"
	node_start B
	# the default backoff (10s..1h): a rest for each refused connection, as
	# before, would take minutes over 300 messages (or an hour, counted per
	# transfer); halving instead takes a second or two.  batch 1: a PUT a
	# message, so 300 of them are 300 transfers
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "	concurrency 32" "	batch 1"
	node_start A
	seq 300 | on A mq-send -l -i q >"$T/ids"
	wait_for 20 on B count_is 300 q new
	wait_for 10 on A queue_empty q
	received_once B q "$T/ids"
	on A count_is 0 q dead
	nlog_has A 'beside transfers the peer answers: [0-9]+ transfers at once from now \(of concurrency 32\)'
	! nlog_has A 'cannot take messages now'
	fwd_ge "$pa" q forwarded 300
	[ "$(fwd "$pa" q width)" -le 32 ]
}

@test "relay: messages with an ordering key stay in line behind their key on B (one head in new/, the rest in keys/)" {
	local pb
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_start A
	local i
	for i in 1 2 3; do echo "a $i" | on A mq-send --key a q; done
	echo free | on A mq-send q
	wait_for 20 on A queue_empty q
	# A forwards a key's messages one at a time (only its head is in new/);
	# B keeps them in that line: a consumer there gets a 2 only after a 1
	wait_for 5 on B count_is 2 q new # a's head, and the unkeyed one
	wait_for 5 keyed_is 3
	run -0 on B mq-peek -s waiting q
	[ "${#lines[@]}" -eq 2 ]
	local p
	p=$(on B mq-recv -c q | head -n 1) # holds key a (mq-recv -c prints the id first)
	run -0 on B mq-recv -n 0 q
	[ "$output" = free ]
	! nlog_has A 'dead letter'
}

# ---- 8. a loop ----

@test "relay: a loop A -> B -> A ends in a dead letter mentioning 508/loop, not in endless delivery" {
	local pa pb id
	pick_port pa
	pick_port pb
	node_conf A "listen 127.0.0.1:$pa" "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}"
	node_conf B "listen 127.0.0.1:$pb" "forward q http://127.0.0.1:$pa" "${FWD_OPTS[@]}"
	node_start A
	node_start B
	id=$(echo round and round | on A mq-send -i q)
	dead_letters() { echo $(($(on A count q dead) + $(on B count q dead))); }
	dead_is() { [ "$(dead_letters)" -eq "$1" ]; }
	wait_for 20 dead_is 1
	# and it is not going round any more
	wait_for 5 on A count_is 0 q new
	wait_for 5 on B count_is 0 q new
	sleep 0.5
	dead_is 1
	[ "$(($(on A messages_anywhere q) + $(on B messages_anywhere q)))" -eq 1 ]
	local f
	f=$( (on A files q dead; on B files q dead) | head -n 1)
	[ "$(name_id "$f")" = "$id" ]
	[[ $(header_of "$f" Dead-Reason) =~ 508|[Ll]oop ]]
	[ "$(body_of "$f")" = "round and round" ]
}

# ---- 9. TLS ----

@test "relay: TLS: tls-ca to an https listener delivers; with tls-client-ca only a forward with a client certificate does" {
	local p1 p2 c="$BATS_TEST_TMPDIR/tls" q
	make_certs
	pick_port p1
	pick_port p2
	node_conf B "listen 127.0.0.1:$p1" "	tls-cert $c/server.pem" "	tls-key $c/server.key" \
		"listen 127.0.0.1:$p2" "	tls-cert $c/server.pem" "	tls-key $c/server.key" \
		"	tls-client-ca $c/ca.pem"
	node_start B
	nlog_has B "listening on 127.0.0.1:$p2 \(TLS, client certificates\)"
	node_conf A \
		"forward q1 https://127.0.0.1:$p1" "${FWD_OPTS[@]}" "	tls-ca $c/ca.pem" \
		"forward q2 https://127.0.0.1:$p2" "${FWD_OPTS[@]}" "	tls-ca $c/ca.pem" \
		"	tls-cert $c/client.pem" "	tls-key $c/client.key" \
		"forward q3 https://127.0.0.1:$p2" "${FWD_OPTS[@]}" "	tls-ca $c/ca.pem" \
		"forward q4 https://127.0.0.1:$p1" "${FWD_OPTS[@]}"
	node_start A
	for q in q1 q2 q3 q4; do
		echo "to $q" | on A mq-send -i $q >"$T/ids-$q"
	done
	# server verified by our CA: delivered
	wait_for 20 on B count_is 1 q1 new
	wait_for 10 on A queue_empty q1
	received_once B q1 "$T/ids-q1"
	# client certificate asked for and given: delivered
	wait_for 20 on B count_is 1 q2 new
	wait_for 10 on A queue_empty q2
	received_once B q2 "$T/ids-q2"
	# client certificate asked for, none given: refused, kept on A
	wait_for 20 nlog_has A 'forward q3 -> '
	# a server certificate nobody vouched for (no tls-ca): not sent
	wait_for 20 nlog_has A 'forward q4 -> '
	sleep 0.5
	for q in q3 q4; do
		[ "$(on B messages_anywhere $q)" -eq 0 ]
		wait_for 5 anywhere_is A 1 $q
		on A uncounted $q
	done
}

# ---- 10. to NAME ----

@test "relay: 'to NAME' delivers into another queue on B" {
	local pb
	pick_port pb
	node_conf B "listen 127.0.0.1:$pb"
	node_start B
	node_conf A "forward q http://127.0.0.1:$pb" "${FWD_OPTS[@]}" "	to elsewhere"
	node_start A
	seq 5 | on A mq-send -l -i q >"$T/ids"
	wait_for 20 on B count_is 5 elsewhere new
	wait_for 10 on A queue_empty q
	received_once B elsewhere "$T/ids"
	[ "$(on B messages_anywhere q)" -eq 0 ]
	local f
	f=$(on B files elsewhere new | head -n 1)
	[ "$(body_of "$f")" = 1 ]
}

# ---- 11. a real link between two network namespaces ----

# netns_pair: two namespaces joined by a veth pair, A at $IP_A, B at $IP_B
# (in $NS_A, $NS_B, the ends $DEV_A, $DEV_B); teardown deletes them.
# Skips unless root with a working `ip netns`.
netns_pair() {
	[ "$(id -u)" -eq 0 ] || skip "needs root for network namespaces"
	command -v ip >/dev/null || skip "no ip(8)"
	local tag="$$$((RANDOM % 1000))" net=$((RANDOM % 200 + 20))
	NS_A=mqtA$tag NS_B=mqtB$tag DEV_A=mqa$tag DEV_B=mqb$tag
	IP_A=10.231.$net.1 IP_B=10.231.$net.2
	ip netns add "$NS_A" 2>/dev/null || skip "ip netns add does not work here"
	NETNS+=("$NS_A")
	ip netns add "$NS_B"
	NETNS+=("$NS_B")
	ip link add "$DEV_A" netns "$NS_A" type veth peer name "$DEV_B" netns "$NS_B" 2>/dev/null ||
		skip "cannot make a veth pair here"
	ip -n "$NS_A" addr add "$IP_A/24" dev "$DEV_A"
	ip -n "$NS_B" addr add "$IP_B/24" dev "$DEV_B"
	ip -n "$NS_A" link set lo up
	ip -n "$NS_B" link set lo up
	ip -n "$NS_A" link set "$DEV_A" up
	ip -n "$NS_B" link set "$DEV_B" up
}

# netns_nodes [LINE...]: B listening on $IP_B in $NS_B, A forwarding q to it
# from $NS_A, LINE... the forward's further options.
netns_nodes() {
	node_conf B "listen $IP_B:8080"
	node_start B ip netns exec "$NS_B"
	node_conf A "forward q http://$IP_B:8080" "${FWD_OPTS[@]}" "$@"
	node_start A ip netns exec "$NS_A"
}

@test "relay: netns: the link goes down, messages wait uncounted; it comes up, all arrive once" {
	netns_pair
	# a transfer on a connection whose link went down ends at the timeout
	netns_nodes "	timeout 3s"
	seq 50 | on A mq-send -l -i q >"$T/ids"
	wait_for 20 on B count_is 50 q new
	wait_for 10 on A queue_empty q

	ip -n "$NS_A" link set "$DEV_A" down
	seq 51 100 | on A mq-send -l -i q >>"$T/ids"
	wait_for 10 nlog_has A 'cannot take messages now'
	sleep 2 # a few seconds of outage, several tries
	on B count_is 50 q new
	# all 50 at A: counted directory by directory while the forward keeps
	# trying (a claim given back between the count of new/ and that of cur/
	# is missed), so until one count sees them all
	wait_for 5 anywhere_is A 50
	on A uncounted q
	ip -n "$NS_A" link set "$DEV_A" up

	wait_for 40 on A queue_empty q
	received_once B q "$T/ids"
}

@test "relay: netns: 500 messages over a link with netem loss 5% delay 50ms all arrive once" {
	netns_pair
	ip netns exec "$NS_A" tc qdisc add dev "$DEV_A" root netem loss 5% delay 50ms 2>/dev/null ||
		skip "tc netem is not available here"
	ip netns exec "$NS_B" tc qdisc add dev "$DEV_B" root netem loss 5% delay 50ms
	netns_nodes "	concurrency 8" "	timeout 10s"
	seq 500 | on A mq-send -l -i q >"$T/ids"
	wait_for 90 on A queue_empty q
	received_once B q "$T/ids"
	! nlog_has A 'dead letter'
}
