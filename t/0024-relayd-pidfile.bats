#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd -p FILE: the pid file is there once the daemon has started (and
# not for -n, nor when start-up fails), SIGHUP sent to the pid it names
# reloads that daemon and not another one, and it is removed at exit.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper

@test "relayd -p: written after start-up, names this daemon among two, removed at exit" {
	relayd_conf "consume q cat >/dev/null"
	local pf="$T/relayd.pid" pf2="$T/other.pid"
	run -0 mq-relayd -n -c "$RELAYD_CONF" -p "$pf"
	[ ! -e "$pf" ]
	start_relayd -p "$pf"
	local first=$RELAYD_PID
	[ "$(cat "$pf")" = "$first" ]
	# a second daemon, on a spool of its own
	start_relayd -p "$pf2" -d "$T/spool2"
	local second=$RELAYD_PID
	[ "$(cat "$pf2")" = "$second" ]
	# no temporary file left beside them
	[ "$(ls "$T" | grep -c '\.pid\.')" = 0 ]
	kill -HUP "$(cat "$pf")"
	wait_for 10 log_has "reloaded $RELAYD_CONF"
	[ "$(grep -c 'SIGHUP: reloading' "$RELAYD_LOG")" = 1 ]
	RELAYD_PID=$first stop_relayd 20
	[ ! -e "$pf" ]
	[ -e "$pf2" ]
	RELAYD_PID=$second stop_relayd 20
	[ ! -e "$pf2" ]
}

@test "relayd -p: a pid file that cannot be written stops start-up, exit 73" {
	relayd_conf "consume q cat >/dev/null"
	run -73 mq-relayd -c "$RELAYD_CONF" -p "$T/no/such/dir/relayd.pid" 3>&-
	[[ $output == "mq-relayd: write pid file $T/no/such/dir/relayd.pid: No such file or directory" ]]
}
