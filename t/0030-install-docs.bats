#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# What a packager and a reader get: make install into a staging root, a man
# page with EXIT STATUS and EXAMPLES for every command, --help on one screen.

bats_require_minimum_version 1.5.0
load helper

TOP="$BATS_TEST_DIRNAME/.."
COMMANDS="mq-send mq-recv mq-ack mq-nack mq-peek mq-replay mq-rm mq-pause mq-stat mq-sub mq-relayd"
# mq-bridge is built where libnats is (contrib/install-deps installs it)
[ -x "$TOP/bin/mq-bridge" ] && COMMANDS="$COMMANDS mq-bridge"

@test "make install honours DESTDIR and PREFIX, and installs no file outside them" {
	local root="$BATS_TEST_TMPDIR/root"
	run -0 make -s -C "$TOP" install DESTDIR="$root" PREFIX=/opt/mq
	for c in $COMMANDS; do
		local dir=bin
		[ "$c" = mq-relayd ] && dir=sbin
		[ -x "$root/opt/mq/$dir/$c" ]
		run -0 "$root/opt/mq/$dir/$c" --version
		[[ $output == "$c (spoolmq) "* ]]
	done
	[ -f "$root/opt/mq/share/man/man5/mq-spool.5" ]
	[ -f "$root/opt/mq/share/man/man8/mq-relayd.8" ]
	[ "$(find "$root" -mindepth 1 -maxdepth 1)" = "$root/opt" ]
}

@test "every command has a man page with EXIT STATUS and EXAMPLES that mandoc accepts" {
	command -v mandoc >/dev/null || skip "mandoc not installed"
	for c in $COMMANDS; do
		local page
		page=$(ls "$TOP"/man/"$c".[18])
		grep -q '^\.Sh EXIT STATUS' "$page"
		grep -q '^\.Sh EXAMPLES' "$page"
		# warnings and worse, but for references to pages not installed here
		run mandoc -Tlint -W warning "$page"
		[ -z "$(echo "$output" | grep -v 'referenced manual not found' | grep -v '^$')" ]
	done
	for page in "$TOP"/man/mq-spool.5 "$TOP"/man/mq.7 "$TOP"/man/mq-relayd.conf.5; do
		run mandoc -Tlint -W warning "$page"
		[ -z "$(echo "$output" | grep -v 'referenced manual not found' | grep -v '^$')" ]
	done
}

@test "--help fits on a screen and shows the usage line of the man page" {
	for c in $COMMANDS; do
		run -0 "$c" --help
		[ "${#lines[@]}" -le 24 ]
		[[ ${lines[0]} == "usage: $c"* ]]
	done
}
