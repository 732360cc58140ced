#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# make deb: the package builds (lintian clean when lintian is installed),
# holds what it should, and the demo runs from it against the installed
# commands, not the tree's.  Installed for real (dpkg -i, then purged) only
# as root in CI (CI set, as GitHub Actions and GitLab set it) or with
# SPOOLMQ_DEB_INSTALL=1; otherwise unpacked into a throwaway root.
# The build is a copy of the tree's, in .deb/ (about 20 s on 2 cores).

bats_require_minimum_version 1.5.0
load helper

TOP="$BATS_TEST_DIRNAME/.."

# Why the file's tests are skipped, or nothing: a skip is said per test (this
# bats fails a setup_file that skips).
why_skip() {
	# the package is built from a copy of the tree with its own flags: the
	# sanitizers' pass of make check would build the same package again
	if [ -n "${SPOOLMQ_SANITIZERS:-}" ]; then
		echo "checked in the normal pass of make check"
	elif ! command -v dpkg-deb >/dev/null || ! command -v dpkg-shlibdeps >/dev/null; then
		echo "dpkg-deb or dpkg-shlibdeps (dpkg-dev) not installed"
	fi
}

setup_file() {
	[ -z "$(why_skip)" ] || return 0
	run -0 timeout 300 make -s -C "$TOP" deb
	echo "$output" >"$BATS_FILE_TMPDIR/make-deb.out"
}

setup() {
	local why
	why=$(why_skip)
	[ -z "$why" ] || skip "$why"
}

deb_file() { ls "$TOP"/spoolmq_*.deb; }

@test "make deb builds a package that lintian passes" {
	local out
	out=$(cat "$BATS_FILE_TMPDIR/make-deb.out")
	[[ $out == *"mkdeb: built spoolmq_"*".deb (Depends: "* ]]
	local lib
	for lib in libc6 libcurl libjansson4 libmicrohttpd12 libgnutls30 libssl3; do
		[[ $out == *"Depends: "*"$lib"* ]] || { echo "no $lib in Depends"; false; }
	done
	if command -v lintian >/dev/null; then
		[[ $out == *"mkdeb: lintian: no errors, no warnings"* ]]
	else
		[[ $out == *"lintian is not installed"* ]]
	fi
	run -0 dpkg-deb -f "$(deb_file)" Package Depends
	[[ ${lines[0]} == "Package: spoolmq" ]]
	[[ $output == *"libc6"* ]]
}

@test "the package holds the binaries, gzipped man pages, units, completions and the demo" {
	run -0 dpkg-deb -c "$(deb_file)"
	local f
	for f in ./usr/bin/mq-send ./usr/bin/mq-sub ./usr/sbin/mq-relayd \
		./usr/share/man/man1/mq-recv.1.gz ./usr/share/man/man8/mq-relayd.8.gz \
		./usr/share/man/man5/mq-spool.5.gz ./usr/share/man/man7/mq.7.gz \
		./lib/systemd/system/mq-relayd.service ./lib/systemd/system/mq-recv@.service \
		./usr/lib/sysusers.d/spoolmq.conf ./usr/lib/tmpfiles.d/spoolmq.conf \
		./usr/share/bash-completion/completions/mq-send \
		./usr/share/bash-completion/completions/mq-relayd \
		./usr/share/zsh/vendor-completions/_mq \
		./usr/share/doc/spoolmq/copyright ./usr/share/doc/spoolmq/changelog.Debian.gz \
		./usr/share/doc/spoolmq/examples/demo; do
		grep -q " $f\( -> .*\)\?$" <<<"$output" || { echo "missing: $f"; false; }
	done
	# mq-bridge (built when libnats-dev is there) comes with its unit
	if grep -q ' ./usr/bin/mq-bridge$' <<<"$output"; then
		grep -q ' ./lib/systemd/system/mq-bridge@.service$' <<<"$output"
	fi
	# no man page left ungzipped, nothing owned by the builder
	! grep -E '\.[1578]$' <<<"$output"
	! grep -v ' root/root ' <<<"$output"
	local x="$BATS_TEST_TMPDIR/x"
	dpkg-deb -x "$(deb_file)" "$x"
	grep -qx 'ExecStart=/usr/sbin/mq-relayd -c /etc/mq/relayd.conf' "$x/lib/systemd/system/mq-relayd.service"
	grep -qx 'User=spoolmq' "$x/lib/systemd/system/mq-relayd.service"
	# dynamically linked, and only the daemon links libcurl
	run -0 readelf -d "$x/usr/bin/mq-send"
	[[ $output == *"libc.so"* && $output != *"libcurl"* && $output != *"jansson"* ]]
	run -0 readelf -d "$x/usr/sbin/mq-relayd"
	[[ $output == *"libcurl"* ]]
}

@test "the demo runs from the package, with the installed commands" {
	command -v curl >/dev/null || skip "curl not installed (the demo needs it)"
	local demo bindir sbindir real=
	if [ "$(id -u)" = 0 ] && [ -n "${CI-}${SPOOLMQ_DEB_INSTALL-}" ]; then
		real=1
		! dpkg-query -W spoolmq 2>/dev/null || skip "spoolmq is installed already: not touching it"
		run -0 dpkg -i "$(deb_file)"
		bindir=/usr/bin sbindir=/usr/sbin demo=/usr/share/doc/spoolmq/examples/demo
		getent passwd spoolmq
		[ -d /var/spool/mq ]
	else
		local root="$BATS_TEST_TMPDIR/root"
		dpkg-deb -x "$(deb_file)" "$root"
		bindir=$root/usr/bin sbindir=$root/usr/sbin demo=$root/usr/share/doc/spoolmq/examples/demo
	fi
	# the installed commands, never the tree's bin/ (which helper.bash put first)
	local path="$bindir:$sbindir:/usr/bin:/bin"
	run -0 env PATH="$path" sh -c 'command -v mq-send; command -v mq-relayd'
	[ "${lines[0]}" = "$bindir/mq-send" ] && [ "${lines[1]}" = "$sbindir/mq-relayd" ]
	TMPDIR="$BATS_TEST_TMPDIR" PATH="$path" run -0 timeout 120 sh "$demo"
	local rc=$status out=$output
	if [ -n "$real" ]; then
		run -0 dpkg --purge spoolmq
		! dpkg-query -W -f='${Status}\n' spoolmq 2>/dev/null | grep -q '^install ok'
	fi
	[ "$rc" = 0 ]
	[[ $out == *'$ mq-recv jobs'*'resize /img/42.png'* ]]
	[[ $out == *'charge: attempt 3: charged: order 1234'* ]]
	[[ $out == *'collector got: GET /a 200'* ]]
	[[ $out == *"demo done.  Its spools are left for you to look at, in $BATS_TEST_TMPDIR/spoolmq-demo."* ]]
	local dir
	dir=$(echo "$BATS_TEST_TMPDIR"/spoolmq-demo.*)
	[ -d "$dir/spool/logs/dead" ] && [ -s "$dir/relayd.log" ]
}
