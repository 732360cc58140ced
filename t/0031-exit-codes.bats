#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# One exit-code table: lib/exitcodes.h is the source, and the copies of the
# shared table (README, mq(7), mq-spool(5)) list exactly its codes; every
# command's EXIT STATUS uses only codes of it; the code names no EX_* that
# the table does not have.  Nothing is built or run: these read the files.

bats_require_minimum_version 1.5.0
load helper

TOP="$BATS_TEST_DIRNAME/.."

# the codes of lib/exitcodes.h, one per line, sorted
header_codes() {
	{
		sed -nE 's/^#define EX_[A-Z]+ ([0-9]+) .*/\1/p' "$TOP/lib/exitcodes.h"
		sed -nE 's/^ \* +([0-9]+) EX_[A-Z]+ .*/\1/p' "$TOP/lib/exitcodes.h"
	} | sort -n | uniq
}

# the codes of the EXIT STATUS section of man page $1 (its .It lines)
man_codes() {
	awk '/^\.Sh /{on = ($0 == ".Sh EXIT STATUS"); next} on && /^\.It [0-9]+$/ {print $2}' "$1" |
		sort -n | uniq
}

# the codes of README's paragraph "Exit codes, the same in every command"
readme_codes() {
	awk '/^Exit codes, the same in every command/{on = 1} on && /^$/{exit} on' "$TOP/README" |
		tr '\n' ' ' | sed 's/([^)]*)//g' | grep -oE '(^|[:;]) *[0-9]+ ' | tr -dc '0-9\n ' |
		tr -s ' ' '\n' | grep . | sort -n | uniq
}

@test "lib/exitcodes.h has the codes it should, 71 (out of memory) among them" {
	run -0 header_codes
	[ "$(echo $output)" = "0 1 2 3 4 5 64 65 66 67 70 71 73 74 75 77 78" ]
}

@test "README, mq(7) and mq-spool(5) list exactly the codes of lib/exitcodes.h" {
	local want
	want=$(header_codes)
	run -0 readme_codes
	[ "$output" = "$want" ] || { diff <(echo "$want") <(echo "$output"); false; }
	for page in "$TOP/man/mq.7" "$TOP/man/mq-spool.5"; do
		run -0 man_codes "$page"
		[ "$output" = "$want" ] || { echo "$page:"; diff <(echo "$want") <(echo "$output"); false; }
	done
}

@test "every command's EXIT STATUS uses only codes of the table, 71 included" {
	local want page c
	want=$(header_codes)
	for page in "$TOP"/man/mq-*.[18]; do
		run -0 man_codes "$page"
		[ -n "$output" ]
		for c in $output; do
			grep -qx "$c" <<<"$want" || { echo "$page: exit $c is not in lib/exitcodes.h"; false; }
		done
		# out of memory can happen to every command
		grep -qx 71 <<<"$output" || { echo "$page: no 71"; false; }
	done
}

@test "the code uses no EX_ name that lib/exitcodes.h does not list" {
	local names n
	names=$(grep -ohE '\bEX_[A-Z]+\b' "$TOP"/lib/*.[ch] "$TOP"/bin/*.c "$TOP"/relayd/*.[ch] | sort -u)
	for n in $names; do
		grep -qE "(#define $n [0-9]|^ \* +[0-9]+ $n |^ \* $n \([0-9]+\) is no exit status)" \
			"$TOP/lib/exitcodes.h" || { echo "$n is not in lib/exitcodes.h"; false; }
	done
}

@test "out of memory in lib/ is 71, as in the commands" {
	run -0 grep -n 'case ENOMEM: return EX_OSERR' "$TOP/lib/err.c"
}
