# SPDX-License-Identifier: MIT
#
# A three-node nats-server cluster with JetStream on loopback, for the
# bridge tests: ports chosen free, each server its own store under
# $NATS_DIR, started with bats' fd 3 closed, its pid in $NATS_DIR/pids for
# nats_cluster_stop (a cluster serves a whole file: setup_file starts it).
# Every wait has a deadline.
#
#   nats_cluster_start        servers 1..3 (from setup_file); NATS_URLS set
#   nats_load                 in a test: the cluster's ports and pids
#   nats_cluster_stop         from teardown_file: every server, by pid
#   nats_stop I / nats_kill I / nats_start I   one server (SIGTERM / SIGKILL / again)
#   nats_leader STREAM        the index (1..3) of the stream's leader
#   NT ARGS...                t/nats-tool against the cluster

NATS_TOOL="$BATS_TEST_DIRNAME/nats-tool"

nats_skip_unless_ready() {
	command -v nats-server >/dev/null || skip "nats-server not installed"
	[ -x "$NATS_TOOL" ] && [ -x "$MQ_BIN/mq-bridge" ] || skip "built without libnats"
}

nats_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

NT() { "$NATS_TOOL" -s "$NATS_URLS" "$@"; }

nats_start() {
	local i=$1 routes="" k
	for k in 1 2 3; do
		[ "$k" = "$i" ] || routes+="${routes:+,}nats://127.0.0.1:${NATS_CPORTS[$k]}"
	done
	# from a subshell: not this shell's job (no "Killed" notice when it is killed)
	NATS_PIDS[$i]=$(nats-server -a 127.0.0.1 -p "${NATS_PORTS[$i]}" -n "n$i" -js -sd "$NATS_DIR/n$i" \
		--cluster_name spoolmq --cluster "nats://127.0.0.1:${NATS_CPORTS[$i]}" \
		--routes "$routes" -l "$NATS_DIR/n$i.log" 3>&- </dev/null >/dev/null 2>&1 &
		echo $!)
	echo "${NATS_PIDS[$i]}" >>"$NATS_DIR/pids"
	declare -p NATS_PORTS NATS_CPORTS NATS_PIDS NATS_URLS | sed 's/^declare -/declare -g/' >"$NATS_DIR/state"
	# bounded: the client port answers within 10 s
	local t
	for ((t = 0; t < 200; t++)); do
		(exec 5<>"/dev/tcp/127.0.0.1/${NATS_PORTS[$i]}") 2>/dev/null && return 0
		kill -0 "${NATS_PIDS[$i]}" 2>/dev/null || { cat "$NATS_DIR/n$i.log" >&2; return 1; }
		sleep 0.05
	done
	return 1
}

nats_stop() { kill -TERM "${NATS_PIDS[$1]}" 2>/dev/null; wait_gone "${NATS_PIDS[$1]}"; }
nats_kill() { kill -KILL "${NATS_PIDS[$1]}" 2>/dev/null; wait_gone "${NATS_PIDS[$1]}"; }

# wait_gone PID: until it has exited (10 s at most)
wait_gone() {
	local t
	for ((t = 0; t < 200; t++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
	return 1
}

nats_cluster_start() {
	export NATS_DIR="$BATS_FILE_TMPDIR/nats"
	mkdir -p "$NATS_DIR"
	declare -ga NATS_PORTS NATS_CPORTS NATS_PIDS
	local i
	for i in 1 2 3; do
		NATS_PORTS[$i]=$(nats_free_port)
		NATS_CPORTS[$i]=$(nats_free_port)
	done
	export NATS_URLS="nats://127.0.0.1:${NATS_PORTS[1]},nats://127.0.0.1:${NATS_PORTS[2]},nats://127.0.0.1:${NATS_PORTS[3]}"
	for i in 1 2 3; do nats_start "$i" || return 1; done
	NT wait 30
}

nats_leader() {
	local l
	l=$(NT leader "$1") || return 1
	echo "${l#n}"
}

nats_load() {
	# shellcheck disable=SC1091
	[ -f "$NATS_DIR/state" ] && source "$NATS_DIR/state"
	declare -p NATS_PIDS >/dev/null 2>&1
}

# every server up again (a test that stopped some), JetStream answering
nats_all_up() {
	local i
	for i in 1 2 3; do
		kill -0 "${NATS_PIDS[$i]}" 2>/dev/null || nats_start "$i" || return 1
	done
	NT wait 30
}

nats_cluster_stop() {
	local pid
	[ -f "$NATS_DIR/pids" ] || return 0
	while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$NATS_DIR/pids"
}
