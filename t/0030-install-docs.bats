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
		# 80 columns
		[ -z "$(printf '%s\n' "${lines[@]}" | awk 'length > 80')" ]
	done
}

@test "--help has a line for each option of the man page's SYNOPSIS; a usage error prints only the synopsis" {
	local c page opt
	for c in $COMMANDS; do
		page=$(ls "$TOP"/man/"$c".[18])
		run -0 "$c" --help
		local help=$output
		# each option of the SYNOPSIS (.Fl il is -i and -l), at the start of a line of its own
		for opt in $(sed -n '/^\.Sh SYNOPSIS/,/^\.Sh /p' "$page" |
			grep -o 'Fl [-a-zA-Z]*' | awk '{ o = $2; if (o == "Ns" || o == "") next; if (o ~ /^-/) print "-" o; else for (i = 1; i <= length(o); i++) print "-" substr(o, i, 1) }' | sort -u); do
			grep -qE "^ +$opt( |,|\$)" <<<"$help" || { echo "$c --help: no line for $opt"; return 1; }
		done
		run --separate-stderr -64 "$c" --no-such-option
		[[ $stderr == *"usage: $c"* && $stderr == *"$c --help: the options"* ]]
		[[ $stderr != *"  -d dir"* ]]
	done
}

@test "a build without a -dev package names the package and make deps, and compiles nothing" {
	# a copy of what the targets need, and a pkg-config that finds nothing
	local src="$BATS_TEST_TMPDIR/src"
	mkdir -p "$src/bin" "$BATS_TEST_TMPDIR/pc"
	cp -r "$TOP/Makefile" "$TOP/lib" "$TOP/relayd" "$src"
	rm -f "$src"/lib/*.o "$src"/lib/*.a
	export PKG_CONFIG_LIBDIR="$BATS_TEST_TMPDIR/pc" PKG_CONFIG_PATH=
	run -2 make -s -C "$src" lib/stat.o
	[ "${lines[0]}" = "lib/stat.o: needs jansson, which pkg-config does not find: install libjansson-dev (run make deps, contrib/install-deps)" ]
	[ ! -e "$src/lib/stat.o" ]
	# the daemon: one line per missing package; one given by hand is not looked for
	run -2 make -s -C "$src" -o lib/libspool.a bin/mq-relayd MHD_CFLAGS= MHD_LIBS='-lmicrohttpd -lgnutls'
	[ "${#lines[@]}" -eq 5 ] # and make's own "Error 1"
	[[ ${lines[0]} == "bin/mq-relayd: needs jansson, "*"install libjansson-dev (run make deps"* ]]
	[[ ${lines[1]} == "bin/mq-relayd: needs libcurl, "*"install libcurl4-openssl-dev (run make deps"* ]]
	[[ ${lines[2]} == "bin/mq-relayd: needs libcrypto, "*"install libssl-dev (run make deps"* ]]
	[[ ${lines[3]} == "bin/mq-relayd: needs libxcrypt, "*"install libcrypt-dev (run make deps"* ]]
	[ ! -e "$src/bin/mq-relayd" ]
	# the other objects need no package
	run -0 make -s -C "$src" lib/name.o
}

@test "make install installs the units with PREFIX filled in, run as spoolmq, and both completions" {
	local root="$BATS_TEST_TMPDIR/root" u
	run -0 make -s -C "$TOP" install DESTDIR="$root" PREFIX=/opt/mq
	local units="$root/opt/mq/lib/systemd/system"
	for u in mq-relayd.service mq-recv@.service; do
		[ -f "$units/$u" ]
		! grep -n '@[A-Z]*@\|/usr/local' "$units/$u"
		grep -qx 'User=spoolmq' "$units/$u"
		grep -qx 'NoNewPrivileges=yes' "$units/$u"
		grep -qx 'ProtectSystem=strict' "$units/$u"
		grep -qx 'ReadWritePaths=/var/spool/mq' "$units/$u"
	done
	grep -qx 'ExecStart=/opt/mq/sbin/mq-relayd -c /etc/mq/relayd.conf' "$units/mq-relayd.service"
	grep -q '^ExecStart=/opt/mq/bin/mq-recv ' "$units/mq-recv@.service"
	# the bridge's, when it is built (libnats-dev)
	if [ -x "$TOP/bin/mq-bridge" ]; then
		u=mq-bridge@.service
		! grep -n '@[A-Z]*@\|/usr/local' "$units/$u"
		grep -qx 'User=spoolmq' "$units/$u"
		grep -qx 'NoNewPrivileges=yes' "$units/$u"
		grep -qx 'ReadWritePaths=/var/spool/mq' "$units/$u"
		grep -qx 'ExecStart=/opt/mq/bin/mq-bridge $MQ_BRIDGE_ARGS' "$units/$u"
	fi
	grep -q '^u spoolmq ' "$root/opt/mq/lib/sysusers.d/spoolmq.conf"
	grep -q '^d /var/spool/mq .* spoolmq spoolmq' "$root/opt/mq/lib/tmpfiles.d/spoolmq.conf"
	# bash-completion loads a completion by the command's name
	for u in $COMMANDS; do
		[ -e "$root/opt/mq/share/bash-completion/completions/$u" ]
	done
	bash -c ". '$root/opt/mq/share/bash-completion/completions/mq-recv' && complete -p $COMMANDS" >/dev/null
	head -1 "$root/opt/mq/share/zsh/site-functions/_mq" | grep -q "^#compdef $(echo $COMMANDS | sed 's/ mq-relayd$//')"
	if command -v zsh >/dev/null; then zsh -n "$root/opt/mq/share/zsh/site-functions/_mq"; fi
}

@test "systemd-analyze verify accepts the installed units" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze not installed"
	local prefix="$BATS_TEST_TMPDIR/prefix"
	# without DESTDIR, so that the paths in ExecStart= exist
	run -0 make -s -C "$TOP" install PREFIX="$prefix"
	cd "$prefix/lib/systemd/system"
	cp mq-recv@.service mq-recv@thumbs.service
	local more=()
	if [ -f mq-bridge@.service ]; then
		cp mq-bridge@.service mq-bridge@logs.service
		more=(./mq-bridge@logs.service)
	fi
	MANPATH="$prefix/share/man" run -0 systemd-analyze verify ./mq-relayd.service ./mq-recv@thumbs.service "${more[@]}"
	[ -z "$output" ]
}
