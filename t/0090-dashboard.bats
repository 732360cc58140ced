#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd's dashboard (dashboard ADDR:PORT), in a real browser: Debian's
# headless Chromium loads the page from a running daemon on 127.0.0.1 with
# queues in several states, and the tests check what a person would see
# (counts, a dead letter's reason, a body holding <script> shown as text),
# that the page updates after a send without a reload (driven through the
# DevTools protocol by t/cdp.py), that an action without its CSRF token is
# refused and that nothing but GET and HEAD works with actions off (curl as
# well as from the page).  Also the configuration's refusals, the login, the
# security headers, and a screenshot: DASHBOARD_SCREENSHOT=FILE keeps it
# (make screenshot writes doc/dashboard.png that way).  The browser tests
# skip only where /usr/bin/chromium is not installed.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper
load relay_helper

CHROMIUM=/usr/bin/chromium
CDP="python3 $BATS_TEST_DIRNAME/cdp.py -t 60"

need_chromium() {
	[ -x "$CHROMIUM" ] || skip "chromium is not installed (contrib/install-deps installs it)"
}

# start_dashboard [LINE...]: a daemon whose dashboard is on 127.0.0.1:$DASH_PORT
# (base URL $DASH), LINE... after the dashboard line (indented: its options).
start_dashboard() {
	local try
	for try in 1 2 3; do
		DASH_PORT=$(free_port)
		DASH="http://127.0.0.1:$DASH_PORT"
		relayd_conf "dashboard 127.0.0.1:$DASH_PORT" "$@"
		if start_relayd; then
			wait_http "$DASH/"
			return
		fi
		grep -q "dashboard 127.0.0.1:$DASH_PORT: cannot start" "$RELAYD_LOG" || return 1
	done
	return 1
}

# dom PATH: the page at PATH as Chromium has it once its script ran, in $DOM.
dom() {
	DOM=$(timeout 60 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --user-data-dir="$(mktemp -d "$T/chromium.XXXXXX")" \
		--virtual-time-budget=3000 --dump-dom "$DASH$1" 2>/dev/null)
	[ -n "$DOM" ]
}

# the text of the table cell of queue Q, column K (data-k), in JavaScript
cell() { echo "document.querySelector('#queues tr[data-queue=\"$1\"] td[data-k=\"$2\"]').textContent"; }

# queues in several states: work (3 ready, 1 in flight, 1 delayed),
# broken (2 dead letters for two reasons), idle (paused), xss (a body and a
# header holding markup), bin (a binary body)
fill_spool() {
	local i id
	for i in 1 2 3 4; do echo "job $i" | mq-send work; done
	echo later | mq-send --delay 1h work
	mq-recv -c work >/dev/null
	echo "first broken" | mq-send --key order-17 broken
	echo "second broken" | mq-send broken
	for i in 1 2; do
		id=$(name_id "$(mq-recv -c broken)")
		if [ "$i" = 1 ]; then
			mq-nack --dead 'upstream said 422: invalid <order>' broken "$id"
		else
			mq-nack --dead 'timeout after 30s' broken "$id"
		fi
	done
	echo quiet | mq-send idle
	mq-pause idle
	printf '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">\n' |
		mq-send -H 'X-Note: <b>bold</b>' xss
	printf '\x00\x01\x02binary\xff\xfe' | mq-send bin
}

id_in() { mq-peek "$1" | awk -v s="$2" '$1 == s {print $2; exit}'; }

# ---- the configuration ----

@test "dashboard: mq-relayd -n accepts a dashboard alone, and says so" {
	relayd_conf "dashboard 127.0.0.1:8081" "	actions on"
	run --separate-stderr -0 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[ "$output" = "$RELAYD_CONF: ok: 0 consumers, a dashboard" ]
}

@test "dashboard: another address than loopback without a password-file is exit 78, one line" {
	for addr in '*:8081' '0.0.0.0:8081' '10.1.2.3:8081' '[::]:8081'; do
		relayd_conf "dashboard $addr"
		run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
		check_error mq-relayd
		[[ $stderr == *"dashboard $addr: not a loopback address: a password-file is required"* ]]
		run --separate-stderr -78 timeout 10 mq-relayd -c "$RELAYD_CONF"
		check_error mq-relayd
	done
	[ ! -e "$MQ_SPOOL" ]
}

@test "dashboard: a password file others can read, or not of user:HASH lines, is exit 78" {
	printf 'admin:%s\n' "$(openssl passwd -6 secret)" >"$T/pw"
	chmod 644 "$T/pw"
	relayd_conf "dashboard *:8081" "	password-file $T/pw"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$T/pw: readable by group or others"* ]]
	chmod 600 "$T/pw"
	run -0 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	printf 'admin secret\n' >"$T/pw"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"password-file $T/pw:1: want user:HASH"* ]]
}

@test "dashboard: bad options and a second dashboard are exit 78 naming the line" {
	relayd_conf "dashboard 127.0.0.1:8081" "	actions maybe"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[[ $stderr == *"relayd.conf:5: actions: on or off"* ]]
	relayd_conf "dashboard 127.0.0.1:8081" "dashboard 127.0.0.1:8082"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[[ $stderr == *"relayd.conf:5: dashboard: one only"* ]]
	relayd_conf "dashboard localhost:8081"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[[ $stderr == *"dashboard: want ADDR:PORT"* ]]
	relayd_conf "dashboard 127.0.0.1:8081" "	token-file $T/x"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[[ $stderr == *"unknown dashboard option 'token-file'"* ]]
}

# ---- HTTP, with curl ----

@test "dashboard: every answer has the security headers; the files are built in" {
	start_dashboard
	req GET "$DASH/"
	[ "$CODE" = 200 ]
	[ "$(resp_header Content-Type)" = "text/html; charset=utf-8" ]
	[[ $(resp_header Content-Security-Policy) == "default-src 'none'; script-src 'self'; style-src 'self';"* ]]
	[[ $(resp_header Content-Security-Policy) == *"frame-ancestors 'none'"* ]]
	[ "$(resp_header X-Content-Type-Options)" = nosniff ]
	[ "$(resp_header X-Frame-Options)" = DENY ]
	[ "$(resp_header Referrer-Policy)" = no-referrer ]
	[ "$(resp_header Cache-Control)" = no-store ]
	req GET "$DASH/static/dash.js"
	[ "$CODE" = 200 ]
	[[ $(resp_header Content-Type) == text/javascript* ]]
	[ "$BODY" = "$(cat "$BATS_TEST_DIRNAME/../relayd/web/dash.js")" ]
	req GET "$DASH/static/dash.css"
	[[ $(resp_header Content-Type) == text/css* ]]
	req GET "$DASH/static/nothing.js"
	[ "$CODE" = 404 ]
	[ "$(resp_header X-Frame-Options)" = DENY ]
	req GET "$DASH/q/no-such-queue"
	[ "$CODE" = 404 ]
	req GET "$DASH/q/..%2Fetc"
	[ "$CODE" = 404 ]
}

@test "dashboard: with actions off nothing but GET and HEAD works (405), and nothing changes" {
	start_dashboard
	fill_spool
	local dead csrf
	dead=$(id_in broken dead)
	req GET "$DASH/"
	csrf=$(sed -n 's/.*name="csrf-token" content="\([0-9a-f]*\)".*/\1/p' <<<"$BODY")
	[ ${#csrf} -eq 64 ]
	[[ $BODY != *'<form'* ]]
	req HEAD "$DASH/"
	[ "$CODE" = 200 ]
	for m in POST PUT DELETE PATCH OPTIONS; do
		req "$m" "$DASH/q/broken/replay" -H "Origin: $DASH" -d "csrf=$csrf&id=$dead"
		[ "$CODE" = 405 ]
		[ "$(resp_header Allow)" = "GET, HEAD" ]
	done
	req POST "$DASH/q/idle/resume" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf"
	[ "$CODE" = 405 ]
	[ "$(count broken dead)" -eq 2 ]
	[ -e "$MQ_SPOOL/idle/paused" ]
	[ "$(log_count 'dashboard: local:')" -eq 0 ]
}

@test "dashboard: a Host that is not a loopback name is refused (DNS rebinding)" {
	start_dashboard
	req GET "$DASH/" -H "Host: evil.example:$DASH_PORT"
	[ "$CODE" = 421 ]
	req GET "$DASH/api/overview" -H "Host: 127.0.0.1:1"
	[ "$CODE" = 421 ]
	req GET "$DASH/" -H "Host: localhost:$DASH_PORT"
	[ "$CODE" = 200 ]
}

@test "dashboard: actions need the CSRF token and the page's Origin; each is an audit line" {
	start_dashboard "	actions on"
	fill_spool
	local dead csrf
	dead=$(id_in broken dead)
	req GET "$DASH/q/broken"
	csrf=$(sed -n 's/.*name="csrf-token" content="\([0-9a-f]*\)".*/\1/p' <<<"$BODY")
	[[ $BODY == *"action=\"/q/broken/replay\""* ]]
	req POST "$DASH/q/broken/replay" -H "Origin: $DASH" -d "id=$dead"
	[ "$CODE" = 403 ]
	[[ $BODY == *CSRF* ]]
	req POST "$DASH/q/broken/replay" -H "Origin: $DASH" -d "csrf=0000$csrf&id=$dead"
	[ "$CODE" = 403 ]
	req POST "$DASH/q/broken/replay" -d "csrf=$csrf&id=$dead"
	[ "$CODE" = 403 ]
	req POST "$DASH/q/broken/replay" -H "Origin: http://evil.example" -d "csrf=$csrf&id=$dead"
	[ "$CODE" = 403 ]
	req POST "$DASH/q/broken/replay" -H "Origin: null" -H "Sec-Fetch-Site: cross-site" \
		-d "csrf=$csrf&id=$dead"
	[ "$CODE" = 403 ]
	req GET "$DASH/q/broken/replay"
	[ "$CODE" = 405 ]
	[ "$(count broken dead)" -eq 2 ]
	[ "$(log_count 'dashboard: local:')" -eq 0 ]
	# the form as a browser without scripts posts it: back to the queue's page
	req POST "$DASH/q/broken/replay" -H "Origin: $DASH" -d "csrf=$csrf&id=$dead"
	[ "$CODE" = 303 ]
	[ "$(resp_header Location)" = /q/broken ]
	[ "$(count broken dead)" -eq 1 ]
	[ "$(id_in broken ready)" = "$dead" ]
	log_has "dashboard: local: replay queue broken: ids $dead \(1 of 1 done\)"
	# the header as the script sends it, and a JSON answer
	req POST "$DASH/q/idle/resume" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -H 'Accept: application/json'
	[ "$CODE" = 200 ]
	[ "$(json_get 'j["done"]' <<<"$BODY")" = 1 ]
	[ ! -e "$MQ_SPOOL/idle/paused" ]
	log_has 'dashboard: local: resume queue idle$'
	req POST "$DASH/q/work/delete" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -d "id=$dead"
	[ "$CODE" = 404 ]
	req POST "$DASH/q/broken/delete" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -d "id=$dead"
	[ "$CODE" = 303 ]
	[ "$(messages_anywhere broken)" -eq 1 ]
	log_has "dashboard: local: delete queue broken: ids $dead"
	req POST "$DASH/q/broken/replay" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -d "all=1"
	[ "$CODE" = 303 ]
	[ "$(count broken dead)" -eq 0 ]
	log_has 'dashboard: local: replay queue broken: all dead letters \(1 done\)'
	req POST "$DASH/q/work/pause" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -d "id=not-an-id"
	[ "$CODE" = 303 ]
	[ -e "$MQ_SPOOL/work/paused" ]
	req POST "$DASH/q/work/delete" -H "Origin: $DASH" -H "X-CSRF-Token: $csrf" -d "id=../../x"
	[ "$CODE" = 400 ]
}

@test "dashboard: with a password file every request needs a login; actions name the user" {
	printf '# operators\nadmin:%s\nbob:%s\n' "$(openssl passwd -6 's3cret:x')" \
		"$(openssl passwd -5 hunter2)" >"$T/pw"
	chmod 600 "$T/pw"
	start_dashboard "	password-file $T/pw" "	actions on"
	req GET "$DASH/"
	[ "$CODE" = 401 ]
	[[ $(resp_header WWW-Authenticate) == 'Basic realm="spoolmq dashboard"'* ]]
	[ "$(resp_header X-Frame-Options)" = DENY ]
	req GET "$DASH/static/dash.css"
	[ "$CODE" = 401 ]
	req GET "$DASH/" -u admin:wrong
	[ "$CODE" = 401 ]
	req GET "$DASH/" -u nobody:s3cret:x
	[ "$CODE" = 401 ]
	log_has "dashboard: failed login as 'admin' from 127.0.0.1"
	req GET "$DASH/api/overview" -u 'admin:s3cret:x'
	[ "$CODE" = 200 ]
	req GET "$DASH/api/overview" -u bob:hunter2
	[ "$CODE" = 200 ]
	# with a login the Host is not restricted: the password is the gate
	req GET "$DASH/" -u bob:hunter2 -H "Host: dash.example:$DASH_PORT"
	[ "$CODE" = 200 ]
	csrf=$(sed -n 's/.*name="csrf-token" content="\([0-9a-f]*\)".*/\1/p' <<<"$BODY")
	echo x | mq-send work
	req POST "$DASH/q/work/pause" -u bob:hunter2 -H "Origin: $DASH" -H "X-CSRF-Token: $csrf"
	[ "$CODE" = 303 ]
	log_has 'dashboard: bob: pause queue work$'
	# SIGHUP reads the file again: bob is gone
	printf 'admin:%s\n' "$(openssl passwd -6 's3cret:x')" >"$T/pw"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has 'reloaded'
	req GET "$DASH/api/overview" -u bob:hunter2
	[ "$CODE" = 401 ]
}

@test "dashboard: over TLS with a login, the Origin of an action is https" {
	make_certs
	printf 'admin:%s\n' "$(openssl passwd -6 pw)" >"$T/pw"
	chmod 600 "$T/pw"
	start_dashboard_tls() {
		local try
		for try in 1 2 3; do
			DASH_PORT=$(free_port)
			DASH="https://127.0.0.1:$DASH_PORT"
			relayd_conf "dashboard 127.0.0.1:$DASH_PORT" "	password-file $T/pw" "	actions on" \
				"	tls-cert $T/tls/server.pem" "	tls-key $T/tls/server.key"
			start_relayd && wait_http "$DASH/" && return
		done
		return 1
	}
	start_dashboard_tls
	log_has "dashboard on https://127.0.0.1:$DASH_PORT/ \(login required, actions on\)"
	req GET "$DASH/" --cacert "$T/tls/ca.pem"
	[ "$CODE" = 401 ]
	req GET "$DASH/" --cacert "$T/tls/ca.pem" -u admin:pw
	[ "$CODE" = 200 ]
	csrf=$(sed -n 's/.*name="csrf-token" content="\([0-9a-f]*\)".*/\1/p' <<<"$BODY")
	echo x | mq-send work
	req POST "$DASH/q/work/pause" --cacert "$T/tls/ca.pem" -u admin:pw \
		-H "Origin: http://127.0.0.1:$DASH_PORT" -H "X-CSRF-Token: $csrf"
	[ "$CODE" = 403 ]
	req POST "$DASH/q/work/pause" --cacert "$T/tls/ca.pem" -u admin:pw \
		-H "Origin: $DASH" -H "X-CSRF-Token: $csrf"
	[ "$CODE" = 303 ]
	[ -e "$MQ_SPOOL/work/paused" ]
	req GET "http://127.0.0.1:$DASH_PORT/"
	[ "$CODE" != 200 ]
}

@test "dashboard: the JSON of the overview, a queue and a message" {
	start_dashboard
	fill_spool
	req GET "$DASH/api/overview"
	[ "$CODE" = 200 ]
	[ "$(resp_header Content-Type)" = application/json ]
	[ "$(json_get '[q["ready"] for q in j["queues"] if q["queue"] == "work"][0]' <<<"$BODY")" = 3 ]
	[ "$(json_get '[q["queue"] for q in j["queues"]]' <<<"$BODY")" = '["bin", "broken", "idle", "work", "xss"]' ]
	req GET "$DASH/api/overview?sort=dead"
	[ "$(json_get 'j["queues"][0]["queue"]' <<<"$BODY")" = broken ]
	req GET "$DASH/api/q/broken"
	[ "$(json_get 'sorted(g["reason"] for g in j["dead_by_reason"])' <<<"$BODY")" = \
		'["timeout after 30s", "upstream said 422: invalid <order>"]' ]
	local id
	id=$(id_in work ready)
	req GET "$DASH/api/q/work/m/$id"
	[ "$(json_get 'j["state"]' <<<"$BODY")" = ready ]
	[[ $(json_get 'j["headers"]' <<<"$BODY") == "Id: $id"* ]]
	# exactly the file mq-peek prints: headers, the empty line, the body
	diff <(mq-peek work "$id") <(json_get 'j["headers"] + "\n" + j["body"]' <<<"$BODY" | head -c -1)
	req GET "$DASH/api/q/bin/m/$(id_in bin ready)"
	[ "$(json_get 'j["binary"]' <<<"$BODY")" = true ]
	[[ $(json_get 'j["hexdump"]' <<<"$BODY") == *"00 01 02 62 69 6e"* ]]
	req GET "$DASH/api/q/work/m/01ARZ3NDEKTSV4RRFFQ69G5FAV"
	[ "$CODE" = 404 ]
}

@test "dashboard: the sent rate counts every send into the spool, by any producer" {
	echo seed | mq-send work # the queue exists when the daemon starts
	start_dashboard
	sleep 2.1 # the rate now is taken over an interval of at least 2 s from a sample
	seq 300 | mq-send -l work
	# a queue made after the start is counted from the next sample (10 s): not asserted
	req GET "$DASH/api/overview"
	local sent
	sent=$(json_get 'j["rates"]["now"]["sent"]' <<<"$BODY")
	python3 -c 'import sys; v = float(sys.argv[1]); sys.exit(not 10 <= v <= 300)' "$sent"
	[ "$(json_get 'j["rates"]["now"]["handled"]' <<<"$BODY")" = 0.0 ]
	req GET "$DASH/"
	[[ $BODY == *'<span class="rate s-sent">sent <b data-k="sent">'* ]]
}

# ---- in the browser ----

@test "dashboard in Chromium: the overview shows every queue's counts, with scripts as without" {
	need_chromium
	start_dashboard
	fill_spool
	# scripts off: the table the server drew
	req GET "$DASH/"
	[[ $BODY == *'<tr data-queue="work">'*'data-k="ready">3<'*'data-k="delayed">1<'*'data-k="in_flight">1<'* ]]
	dom /
	[[ $DOM == *'<tr data-queue="work">'* ]]
	run -0 $CDP "$DASH/" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval [$(cell work ready), $(cell work delayed), $(cell work in_flight), $(cell work dead)]" \
		"eval [$(cell broken dead), $(cell idle state), $(cell idle ready)]" \
		"eval document.querySelectorAll('#queues tbody tr').length" \
		"eval $(cell work oldest_age) !== '-'" \
		"eval document.querySelector('#queues td[data-k=dead].bad') !== null"
	[ "${lines[0]}" = '["3", "1", "1", "0"]' ]
	[ "${lines[1]}" = '["2", "paused", "1"]' ]
	[ "${lines[2]}" = 5 ]
	[ "${lines[3]}" = true ]
	[ "${lines[4]}" = true ]
}

@test "dashboard in Chromium: the page updates after a send, without reloading" {
	need_chromium
	start_dashboard
	fill_spool
	run -0 $CDP "$DASH/" \
		'wait 10 document.body.dataset.refreshes > 0' \
		'eval window.notReloaded = true' \
		"eval $(cell work ready)" \
		"shell echo one more | mq-send work && echo new | mq-send fresh" \
		"wait 10 $(cell work ready) === '4'" \
		"wait 10 document.querySelector('#queues tr[data-queue=fresh]') !== null" \
		'eval window.notReloaded === true' \
		"eval document.getElementById('nqueues').textContent"
	[ "${lines[0]}" = true ]
	[ "${lines[1]}" = '"3"' ]
	[ "${lines[2]}" = true ]
	[ "${lines[3]}" = '"6"' ]
}

@test "dashboard in Chromium: sorting by dead count and by age, without a reload" {
	need_chromium
	start_dashboard
	fill_spool
	local first="document.querySelector('#queues tbody tr').dataset.queue"
	run -0 $CDP "$DASH/?sort=dead" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval $first" \
		"eval document.querySelector('#queues th a[data-sort=name]').click(), $first" \
		"eval document.querySelector('#queues th a[data-sort=age]').click(), $first" \
		"eval location.search"
	[ "${lines[0]}" = '"broken"' ]
	[ "${lines[1]}" = '"bin"' ]
	[ "${lines[2]}" = '"work"' ]
	[ "${lines[3]}" = '"?sort=age"' ]
}

@test "dashboard in Chromium: a queue's page shows its backlog, recent messages and dead letters by reason" {
	need_chromium
	start_dashboard
	fill_spool
	dom /q/broken
	[[ $DOM == *'upstream said 422: invalid &lt;order&gt;'* ]]
	run -0 $CDP "$DASH/q/broken" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval Array.from(document.querySelectorAll('#reasons td[data-k=reason]')).map(e => e.textContent).sort()" \
		"eval document.querySelectorAll('#dead tbody tr').length" \
		"eval document.querySelector('#counts td[data-k=dead]').textContent" \
		"eval Array.from(document.querySelectorAll('#dead td[data-k=key]')).map(e => e.textContent).sort()" \
		"eval document.querySelector('#reasons b, #reasons order') === null"
	[ "${lines[0]}" = '["timeout after 30s", "upstream said 422: invalid <order>"]' ]
	[ "${lines[1]}" = 2 ]
	[ "${lines[2]}" = '"2"' ]
	[ "${lines[3]}" = '["", "order-17"]' ]
	[ "${lines[4]}" = true ]
	run -0 $CDP "$DASH/q/work" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval document.querySelectorAll('#recent tbody tr').length" \
		"eval document.querySelector('#hist td[data-k=count]').textContent" \
		"eval Array.from(document.querySelectorAll('#recent td[data-k=state]')).map(e => e.textContent).sort()"
	[ "${lines[0]}" = 5 ]
	[ "${lines[1]}" = '"3"' ]
	[ "${lines[2]}" = '["claimed", "delayed", "ready", "ready", "ready"]' ]
}

@test "dashboard in Chromium: a message's body holding <script> shows as text and never runs" {
	need_chromium
	start_dashboard
	fill_spool
	local id
	id=$(id_in xss ready)
	dom "/q/xss/m/$id"
	[[ $DOM == *'&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror="window.pwned=2"&gt;'* ]]
	[[ $DOM == *'X-Note: &lt;b&gt;bold&lt;/b&gt;'* ]]
	run -0 $CDP "$DASH/q/xss/m/$id" \
		"eval document.getElementById('body').textContent" \
		"eval document.getElementById('headers').textContent.includes('X-Note: <b>bold</b>')" \
		'eval typeof window.pwned' \
		'eval document.scripts.length' \
		"eval document.querySelectorAll('main img, main script, main b').length"
	[ "${lines[0]}" = '"<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">\n"' ]
	[ "${lines[1]}" = true ]
	[ "${lines[2]}" = '"undefined"' ]
	[ "${lines[3]}" = 1 ]
	[ "${lines[4]}" = 0 ]
	# the same message in the queue's list, its first line through the script
	run -0 $CDP "$DASH/q/xss" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval document.querySelector('#recent td[data-k=line]').textContent" \
		'eval typeof window.pwned'
	[ "${lines[0]}" = '"<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"' ]
	[ "${lines[1]}" = '"undefined"' ]
	# a binary body is shown as such
	dom "/q/bin/m/$(id_in bin ready)"
	[[ $DOM == *'binary, 11 bytes'* ]]
	[[ $DOM == *'|...binary..|'* ]]
}

@test "dashboard in Chromium: an action from the page without its CSRF token is refused; with it, done" {
	need_chromium
	start_dashboard "	actions on"
	fill_spool
	local token="document.querySelector('meta[name=csrf-token]').content"
	run -0 $CDP "$DASH/q/idle" \
		"eval fetch('/q/idle/resume', {method: 'POST', body: new URLSearchParams({x: 1})}).then(r => r.status)" \
		"eval fetch('/q/idle/resume', {method: 'POST', body: new URLSearchParams({csrf: 'f'.repeat(64)})}).then(r => r.status)" \
		"shell test -e '$MQ_SPOOL/idle/paused'" \
		"eval document.querySelector('button[data-act=resume]').click()" \
		"wait 10 location.pathname === '/q/idle' && document.getElementById('paused').hidden" \
		"shell test ! -e '$MQ_SPOOL/idle/paused'" \
		"eval fetch('/q/idle/pause', {method: 'POST', headers: {'X-CSRF-Token': $token}}).then(r => r.status)" \
		"wait 10 !document.getElementById('paused').hidden"
	[ "${lines[0]}" = 403 ]
	[ "${lines[1]}" = 403 ]
	[ "${lines[3]}" = 200 ]
	[ -e "$MQ_SPOOL/idle/paused" ]
	[ "$(log_count 'dashboard: local: resume queue idle')" -eq 1 ]
	[ "$(log_count 'dashboard: local: pause queue idle')" -eq 1 ]
}

@test "dashboard in Chromium: with actions off the page has no buttons, and a POST from it is 405" {
	need_chromium
	start_dashboard
	fill_spool
	local token="document.querySelector('meta[name=csrf-token]').content"
	run -0 $CDP "$DASH/q/broken" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval document.querySelectorAll('form, button').length" \
		"eval fetch('/q/broken/replay', {method: 'POST', headers: {'X-CSRF-Token': $token}, body: new URLSearchParams({all: 1})}).then(r => r.status)" \
		"eval fetch('/q/idle/resume', {method: 'PUT', headers: {'X-CSRF-Token': $token}}).then(r => r.status)" \
		"eval fetch('/q/broken', {method: 'DELETE'}).then(r => r.status)"
	[ "${lines[0]}" = 0 ]
	[ "${lines[1]}" = 405 ]
	[ "${lines[2]}" = 405 ]
	[ "${lines[3]}" = 405 ]
	[ "$(count broken dead)" -eq 2 ]
	[ -e "$MQ_SPOOL/idle/paused" ]
}

@test "dashboard in Chromium: a hundred queues, filtered by name as one types" {
	need_chromium
	start_dashboard
	local i
	for i in $(seq -w 1 100); do echo x | mq-send "q$i"; done
	echo y | mq-send q042
	run -0 $CDP "$DASH/" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"eval document.querySelectorAll('#queues tbody tr').length" \
		"eval (f => { f.value = 'q04'; f.dispatchEvent(new Event('input')); })(document.getElementById('filter'))" \
		"eval Array.from(document.querySelectorAll('#queues tbody tr')).map(r => r.dataset.queue).join(' ')" \
		'wait 10 document.body.dataset.refreshes > 2' \
		"eval document.querySelectorAll('#queues tbody tr').length" \
		"eval $(cell q042 ready)"
	[ "${lines[0]}" = 100 ]
	[ "${lines[2]}" = '"q040 q041 q042 q043 q044 q045 q046 q047 q048 q049"' ]
	[ "${lines[3]}" = 10 ]
	[ "${lines[4]}" = '"2"' ]
}

@test "dashboard in Chromium: a screenshot of the overview (DASHBOARD_SCREENSHOT=FILE keeps it)" {
	need_chromium
	# a consumer that takes its queue's messages, a forward to a peer that
	# is not there (retrying, with its error), a backlog
	start_dashboard "	actions on" "consume app-1 cat >/dev/null" "	concurrency 4" \
		"forward app-2 http://127.0.0.1:$(free_port)" "name web1"
	fill_spool
	local i
	for i in $(seq 1 40); do echo "event $i" | mq-send "app-$((i % 4))"; done
	run -0 $CDP "$DASH/" \
		'wait 10 document.body.dataset.refreshes > 0' \
		"wait 20 document.querySelector('#forwards td[data-k=state]').textContent === 'retrying'" \
		"wait 10 document.querySelector('#queues tr[data-queue=app-1] td[data-k=ready]').textContent === '0'" \
		"wait 10 Number(document.querySelector('#rates b[data-k=handled]').textContent) > 0" \
		"shot $T/dashboard.png"
	[ "$(head -c 8 "$T/dashboard.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]
	[ "$(stat -c %s "$T/dashboard.png")" -gt 10000 ]
	if [ -n "${DASHBOARD_SCREENSHOT:-}" ]; then
		cp "$T/dashboard.png" "$DASHBOARD_SCREENSHOT"
	fi
}
