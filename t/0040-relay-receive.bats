#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
#
# mq-relayd's HTTP receiver (listen), end to end with the real daemon and
# curl(1) on 127.0.0.1, each test on a spool and a port of its own: PUT of a
# message file with its own id (201 once it is in new/ with our Hop line,
# 200 for a retry, Content-Digest checked, 409 for the same id with another
# body, once only when two uploads of it race), POST of new messages (one,
# or one a line), POST of a batch of message files (a status line for each
# frame), HEAD, health, stats and metrics; and what it must refuse
# without storing anything: tokens (401/403; a token file or key others can
# read is exit 78; SIGHUP rereads them), bad names and ids (never a file
# outside the spool), bad header blocks, an upload cut off or stalled,
# max-size (413, before the body when the headers tell), max-length (429,
# also against uploads in flight), min-free (503), a loop (508),
# max-per-address, TLS with and without client certificates.

bats_require_minimum_version 1.5.0
load helper
load relayd_helper
load relay_helper

# put Q ID FILE [CURL-ARG...]: PUT FILE as message ID of queue Q.
put() {
	local q=$1 id=$2 f=$3
	shift 3
	req PUT "$RELAY_URL/v1/queues/$q/messages/$id" -T "$f" "$@"
}

# head_is CODE Q ID: HEAD of message ID in Q answers CODE.
head_is() {
	req HEAD "$RELAY_URL/v1/queues/$2/messages/$3"
	[ "$CODE" = "$1" ]
}

# stored_nothing Q: no message of Q in new/, and tmp/ empty once the
# daemon has finished with the request (a refused upload's tmp/ file is
# removed when the connection's request ends).
stored_nothing() {
	[ "$(count "$1" new)" -eq 0 ]
	wait_for 5 count_is 0 "$1" tmp
	[ "$(count "$1" new)" -eq 0 ]
}

# ---- the configuration ----

@test "receive: mq-relayd -n accepts a configuration with only a listen block" {
	relayd_conf "listen 127.0.0.1:8080" \
		"	max-connections 10" \
		"	max-per-address 2" \
		"	request-timeout 5s"
	run --separate-stderr -0 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	[ "$output" = "$RELAYD_CONF: ok: 0 consumers, 0 forwards, 1 listeners" ]
	[ -z "$stderr" ]
	[ ! -e "$MQ_SPOOL" ]
}

@test "receive: a token file that others can read stops the start: exit 78, one line naming it" {
	printf 'secret\n' >"$T/tokens"
	chmod 644 "$T/tokens"
	relayd_conf "listen 127.0.0.1:$(free_port)" "	token-file $T/tokens"
	run --separate-stderr -78 timeout 10 mq-relayd -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$T/tokens"* ]]
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$T/tokens"* ]]
	[ ! -e "$MQ_SPOOL" ]
	# the same file made private is accepted
	chmod 600 "$T/tokens"
	run -0 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
}

@test "receive: a tls-cert or tls-client-ca that cannot be read is exit 78 naming it, not an empty certificate" {
	make_certs
	local tls=$T/tls
	mkdir "$T/dir"
	relayd_conf "listen 127.0.0.1:8080" "	tls-cert $T/dir" "	tls-key $tls/server.key"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$T/dir: not a regular file"* ]]
	relayd_conf "listen 127.0.0.1:8080" "	tls-cert $tls/server.pem" "	tls-key $tls/server.key" \
		"	tls-client-ca $T/dir"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$T/dir: not a regular file"* ]]
	[ ! -e "$MQ_SPOOL" ]
}

# ---- PUT ----

@test "receive: PUT stores the file in new/ under its own id, with our Hop line: 201" {
	start_receiver
	local id f name
	id=$(new_id)
	message "$id" $'hello\n' "Content-Type: text/plain" >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	[ "$(resp_header Location)" = "/v1/queues/q/messages/$id" ]
	f=$(only_file q new)
	is_msg_name "$f"
	[ "$(name_id "$f")" = "$id" ]
	[ "$(name_attempts "$f")" = 0 ]
	[ "$(count q tmp)" -eq 0 ]
	# the receiver's name: HOST:SPOOL without a `name` line
	req GET "$RELAY_URL/v1/health"
	name=$(json_get 'j["name"]' <<<"$BODY")
	[ "$name" = "$(uname -n):$MQ_SPOOL" ]
	# the file as sent, with "Hop: NAME" as the last header
	{
		sed -n '/^$/q; p' "$T/m"
		echo "Hop: $name"
		echo
		echo hello
	} >"$T/want"
	cmp "$T/want" "$f"
	# and a consumer gets it as any message
	run -0 mq-recv q
	[ "$output" = hello ]
}

@test "receive: a PUT streamed without Content-Length (chunked) is stored, its Expires in the name" {
	start_receiver
	local id f exp
	id=$(new_id)
	exp=$(($(now_ms) / 1000 + 3600))
	message "$id" $'streamed\n' "Expires: $(date -u -d "@$exp" +%Y-%m-%dT%H:%M:%S.000Z)" >"$T/m"
	req PUT "$RELAY_URL/v1/queues/q/messages/$id" -T - <"$T/m"
	[ "$CODE" = 201 ]
	f=$(only_file q new)
	is_msg_name "$f"
	[ "$(name_id "$f")" = "$id" ]
	[ "$(basename "$f" | cut -d. -f4)" = "${exp}000" ]
	[ "$(body_of "$f")" = streamed ]
}

@test "receive: a PUT sent in one piece (no Expect: 100-continue) is answered at once" {
	start_receiver
	local i id
	# headers and body in one write, as most clients send a small request:
	# the answer must not wait for some other event to wake the daemon
	for i in 1 2 3 4 5; do
		id=$(new_id)
		message "$id" "$i" >"$T/m"
		put q "$id" "$T/m" -H 'Expect:' --max-time 3
		[ "$CODE" = 201 ]
	done
	[ "$(count q new)" -eq 5 ]
}

@test "receive: a retried PUT of the same id is 200 and the message is stored once" {
	start_receiver
	local id f
	id=$(new_id)
	message "$id" $'once\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	f=$(only_file q new)
	cp "$f" "$T/first"
	put q "$id" "$T/m"
	[ "$CODE" = 200 ]
	put q "$id" "$T/m" -H "Content-Digest: $(content_digest "$T/m")"
	[ "$CODE" = 200 ]
	[ "$(only_file q new)" = "$f" ]
	cmp "$T/first" "$f"
	[ "$(count q tmp)" -eq 0 ]
	# still a duplicate once the first copy has been consumed
	run -0 mq-recv q
	put q "$id" "$T/m"
	[ "$CODE" = 200 ]
	[ "$(count q new)" -eq 0 ]
}

@test "receive: Content-Digest: a match is 201, a mismatch 400 and nothing is stored" {
	start_receiver
	local good bad
	good=$(new_id)
	bad=$(new_id)
	message "$good" $'right\n' >"$T/good"
	message "$bad" $'sent\n' >"$T/bad"
	message "$bad" $'meant\n' >"$T/meant"
	put q "$good" "$T/good" -H "Content-Digest: $(content_digest "$T/good")"
	[ "$CODE" = 201 ]
	put q "$bad" "$T/bad" -H "Content-Digest: $(content_digest "$T/meant")"
	[ "$CODE" = 400 ]
	[[ $BODY == *"digest mismatch"* ]]
	[ "$(name_id "$(only_file q new)")" = "$good" ]
	wait_for 5 count_is 0 q tmp
	head_is 404 q "$bad"
	# the refused id is not taken for received: the right body is stored
	put q "$bad" "$T/bad" -H "Content-Digest: $(content_digest "$T/bad")"
	[ "$CODE" = 201 ]
	[ "$(count q new)" -eq 2 ]
}

@test "receive: the same id with a different Content-Digest is 409 and the first copy stays" {
	start_receiver
	local id f
	id=$(new_id)
	message "$id" $'first\n' >"$T/a"
	message "$id" $'second\n' >"$T/b"
	put q "$id" "$T/a"
	[ "$CODE" = 201 ]
	put q "$id" "$T/b" -H "Content-Digest: $(content_digest "$T/b")"
	[ "$CODE" = 409 ]
	f=$(only_file q new)
	[ "$(body_of "$f")" = first ]
	[ "$(count q tmp)" -eq 0 ]
}

# ---- POST ----

@test "receive: POST of one message: 201, Location and its id in JSON" {
	start_receiver
	local id f
	printf 'a body\nof two lines\n' >"$T/body"
	req POST "$RELAY_URL/v1/queues/q/messages" --data-binary @"$T/body"
	[ "$CODE" = 201 ]
	id=$(json_get 'j["id"]' <<<"$BODY")
	[ "$(json_get 'j["ids"]' <<<"$BODY")" = "[\"$id\"]" ]
	[ "$(resp_header Location)" = "/v1/queues/q/messages/$id" ]
	f=$(only_file q new)
	[ "$(name_id "$f")" = "$id" ]
	[ "$(header_of "$f" Id)" = "$id" ]
	body_of "$f" | cmp - "$T/body"
	head_is 200 q "$id"
}

@test "receive: POST ?split=lines: three lines are three messages, each its line with its newline" {
	start_receiver
	local i id f
	printf 'one\ntwo\nthree\n' >"$T/body"
	req POST "$RELAY_URL/v1/queues/q/messages?split=lines" --data-binary @"$T/body"
	[ "$CODE" = 201 ]
	[ "$(json_get 'j["count"]' <<<"$BODY")" = 3 ]
	[ "$(json_get 'len(j["ids"])' <<<"$BODY")" = 3 ]
	[ "$(count q new)" -eq 3 ]
	for i in 0 1 2; do
		id=$(json_get "j[\"ids\"][$i]" <<<"$BODY")
		f=$(files q new | grep "\.$id\.")
		body_of "$f" | cmp - <(sed -n "$((i + 1))p" "$T/body")
	done
	# delivered in the order of the lines
	run -0 mq-recv -n 0 q
	[ "$output" = "$(cat "$T/body")" ]
}

@test "receive: HEAD is 200 for an id the queue holds, 404 for another" {
	start_receiver
	local id local_id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	head_is 200 q "$id"
	head_is 404 q "$(new_id)"
	head_is 404 other "$id"
	# a question changes nothing: no queue made for it
	[ ! -e "$(qdir other)" ]
	# held, whoever put it there
	local_id=$(echo y | mq-send -i q)
	head_is 200 q "$local_id"
	[ "$(count q new)" -eq 2 ]
}

# ---- health, stats, metrics ----

@test "receive: GET /v1/health, /v1/stats and /metrics tell the queues and the counters" {
	start_receiver
	local id name
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	req POST "$RELAY_URL/v1/queues/q/messages" --data-binary 'y'
	[ "$CODE" = 201 ]
	echo z | mq-send r

	req GET "$RELAY_URL/v1/health"
	[ "$CODE" = 200 ]
	[[ $(resp_header Content-Type) == application/json* ]]
	[ "$(json_get 'j["status"]' <<<"$BODY")" = ok ]
	name=$(json_get 'j["name"]' <<<"$BODY")
	[ -n "$name" ]

	req GET "$RELAY_URL/v1/stats"
	[ "$CODE" = 200 ]
	[ "$(json_get 'j["name"]' <<<"$BODY")" = "$name" ]
	[ "$(json_get 'dict(sorted((x["queue"], x["ready"]) for x in j["queues"]))' <<<"$BODY")" = '{"q": 2, "r": 1}' ]
	[ "$(json_get 'j["counters"]["received"]' <<<"$BODY")" = 2 ]
	[ "$(json_get 'j["forwards"]' <<<"$BODY")" = '[]' ]

	req GET "$RELAY_URL/metrics"
	[ "$CODE" = 200 ]
	[[ $(resp_header Content-Type) == "text/plain; version=0.0.4"* ]]
	grep -qx 'spoolmq_messages{queue="q",state="ready"} 2' <<<"$BODY"
	grep -qx 'spoolmq_messages{queue="r",state="ready"} 1' <<<"$BODY"
	grep -qx 'spoolmq_received_total 2' <<<"$BODY"
	grep -qx '# TYPE spoolmq_received_total counter' <<<"$BODY"
	# answered so far: PUT, POST, health, stats: 2xx all
	[ "$(sed -n 's/^spoolmq_http_answers_total{status="2xx"} //p' <<<"$BODY")" -ge 4 ]
}

@test "receive: /metrics is well-formed Prometheus text: each metric one group, HELP and TYPE first" {
	# two queues with messages, two forwards (with nothing to forward) for
	# the forwards' metrics and their histograms
	start_receiver "forward f1 http://127.0.0.1:9/v1" "forward f2 http://127.0.0.1:9/v1"
	echo x | mq-send q
	echo y | mq-send r
	req GET "$RELAY_URL/metrics"
	[ "$CODE" = 200 ]
	printf '%s\n' "$BODY" >"$T/metrics"
	grep -q '^spoolmq_forward_latency_seconds_count{queue="f2"' "$T/metrics"
	# The text format 0.0.4: "All lines for a given metric must be provided
	# as one single group, with the optional HELP and TYPE lines first."
	python3 - "$T/metrics" <<'EOF'
import re, sys
done, cur, sampled, typed = set(), None, False, {}
for n, line in enumerate(open(sys.argv[1]), 1):
    line = line.rstrip("\n")
    if not line or (line.startswith("#") and not re.match(r"# (HELP|TYPE) ", line)):
        continue
    meta = line.startswith("#")
    if meta:
        name = line.split()[2]
        if line.startswith("# TYPE "):
            typed[name] = line.split()[3]
    else:
        name = re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0)
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in typed and typed.get(base) in ("histogram", "summary"):
            name = base
        if name not in typed:
            sys.exit("line %d: %s: a sample without a TYPE before it" % (n, name))
    if name != cur:
        if name in done:
            sys.exit("line %d: %s again, after other metrics: not one group" % (n, name))
        if cur:
            done.add(cur)
        cur, sampled = name, False
    if meta and sampled:
        sys.exit("line %d: %s: HELP or TYPE after its samples" % (n, name))
    sampled = sampled or not meta
EOF
}

# ---- tokens ----

@test "receive: tokens: none or an unknown one is 401, one for another queue 403" {
	printf '# tokens for the test\ntok-any\ntok-a a\n' >"$T/tokens"
	printf 'tok-bc b,c\n' >"$T/tokens2"
	chmod 600 "$T/tokens" "$T/tokens2"
	start_receiver "	token-file $T/tokens" "	token-file $T/tokens2"
	local id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put b "$id" "$T/m"
	[ "$CODE" = 401 ]
	put b "$id" "$T/m" -H 'Authorization: Bearer wrong'
	[ "$CODE" = 401 ]
	put b "$id" "$T/m" -H 'Authorization: Basic dG9rLWFueTo='
	[ "$CODE" = 401 ]
	put b "$id" "$T/m" -H 'Authorization: Bearer tok-a'
	[ "$CODE" = 403 ]
	req POST "$RELAY_URL/v1/queues/b/messages" -H 'Authorization: Bearer tok-a' --data-binary x
	[ "$CODE" = 403 ]
	[ ! -e "$(qdir b)" ]
	# the allowed ones, from either file
	put b "$id" "$T/m" -H 'Authorization: Bearer tok-bc'
	[ "$CODE" = 201 ]
	put a "$id" "$T/m" -H 'Authorization: Bearer tok-a'
	[ "$CODE" = 201 ]
	put c "$id" "$T/m" -H 'Authorization: Bearer tok-any'
	[ "$CODE" = 201 ]
	[ "$(count a new)" -eq 1 ] && [ "$(count b new)" -eq 1 ] && [ "$(count c new)" -eq 1 ]
	# reading the health needs no token
	req GET "$RELAY_URL/v1/health"
	[ "$CODE" = 200 ]
}

@test "receive: SIGHUP reads the token files again: a new token is taken, a removed one is 401" {
	printf 'old-token\n' >"$T/tokens"
	chmod 600 "$T/tokens"
	start_receiver "	token-file $T/tokens"
	local id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	req HEAD "$RELAY_URL/v1/queues/q/messages/$id" -H 'Authorization: Bearer old-token'
	[ "$CODE" = 404 ]
	printf 'new-token q\n' >"$T/tokens"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has "reloaded $RELAYD_CONF"
	put q "$id" "$T/m" -H 'Authorization: Bearer old-token'
	[ "$CODE" = 401 ]
	put q "$id" "$T/m" -H 'Authorization: Bearer new-token'
	[ "$CODE" = 201 ]
	# a token file made readable by others is refused: the running tokens stay
	chmod 644 "$T/tokens"
	kill -HUP "$RELAYD_PID"
	wait_for 10 log_has "keeping the running configuration"
	grep -q "$T/tokens" <(grep "keeping the running configuration" "$RELAYD_LOG")
	req HEAD "$RELAY_URL/v1/queues/q/messages/$id" -H 'Authorization: Bearer new-token'
	[ "$CODE" = 200 ]
}

# ---- refused names, ids, paths and methods ----

@test "receive: bad ids and queue names are 400, unknown paths 404, wrong methods 405, no file anywhere" {
	start_receiver
	local id u=$RELAY_URL bad before
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	req GET "$u/v1/health" # its answer files exist from now on
	before=$(snapshot)
	for bad in "${id,,}" "${id:0:25}" "${id}0" "8${id:1}" "U${id:1}" "${id:0:25}I" \
		"..%2F..%2Fx" "%2E%2E"; do
		put q "$bad" "$T/m"
		[ "$CODE" = 400 ]
		[[ $BODY == *"bad message id"* ]]
	done
	put q "../../../x" "$T/m" --path-as-is
	[ "$CODE" = 400 ]
	for bad in .. . .hidden -x a%2Fb %2E%2E "a%00b" "$(printf 'q%.0s' {1..65})"; do
		put "$bad" "$id" "$T/m" --path-as-is
		[ "$CODE" = 400 ]
		[[ $BODY == *"bad queue name"* ]]
		req POST "$u/v1/queues/$bad/messages" --path-as-is --data-binary x
		[ "$CODE" = 400 ]
	done
	req PUT "$u/v1/queues/../../messages/$id" --path-as-is -T "$T/m"
	[[ $CODE == 40[04] ]]
	for bad in /nope /v1 /v1/queues /v1/queues/q /v1/queues/q/other; do
		req GET "$u$bad"
		[ "$CODE" = 404 ]
		req PUT "$u$bad" -T "$T/m"
		[ "$CODE" = 404 ]
	done
	req DELETE "$u/v1/queues/q/messages/$id"
	[ "$CODE" = 405 ]
	req POST "$u/v1/queues/q/messages/$id" --data-binary x
	[ "$CODE" = 405 ]
	req PUT "$u/v1/queues/q/messages" -T "$T/m"
	[ "$CODE" = 405 ]
	# nothing was created, in the spool or outside it
	[ "$(snapshot)" = "$before" ]
}

# ---- refused message files ----

@test "receive: a header block without Id, with another Id, or broken, is 400 and nothing is stored" {
	start_receiver
	local id
	id=$(new_id)
	printf 'Date: 2026-01-01T00:00:00.000Z\n\nbody\n' >"$T/no-id"
	message "$(new_id)" $'body\n' >"$T/other-id"
	printf 'Id: %s\nDate: 2026-01-01T00:00:00.000Z\nno colon here\n\nbody\n' "$id" >"$T/no-colon"
	printf 'Id: %s\nDate: 2026-01-01T00:00:00.000Z\n' "$id" >"$T/no-end"
	: >"$T/empty"
	for f in no-id other-id no-colon no-end empty; do
		put q "$id" "$T/$f"
		[ "$CODE" = 400 ]
		stored_nothing q
	done
	head_is 404 q "$id"
	message "$id" $'body\n' >"$T/good"
	put q "$id" "$T/good"
	[ "$CODE" = 201 ]
}

@test "receive: an upload cut off mid-body leaves nothing in new/ and no tmp/ file" {
	start_receiver
	local id
	id=$(new_id)
	# Content-Length 100000, 1 KB sent, then the client goes away: once the
	# daemon has begun the file in tmp/.
	python3 - "$RELAY_PORT" "$id" "$(qdir q)/tmp" <<'EOF'
import os, socket, sys, time
port, mid, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("PUT /v1/queues/q/messages/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Length: 100000\r\n\r\n" % mid).encode()
          + ("Id: %s\nDate: 2026-01-01T00:00:00.000Z\n\n" % mid).encode() + b"x" * 1000)
deadline = time.time() + 10
while True:
    try:
        if [n for n in os.listdir(tmp) if not n.startswith(".")]:
            break
    except FileNotFoundError:
        pass
    if time.time() > deadline:
        sys.exit("no file in tmp/ after 10 s")
    time.sleep(0.02)
s.close()
EOF
	stored_nothing q
	head_is 404 q "$id"
	# the daemon goes on, and the id is free for the whole upload
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
}

@test "receive: an upload that stalls is dropped at request-timeout and leaves no tmp/ file" {
	start_receiver "	request-timeout 1s"
	local id
	id=$(new_id)
	python3 - "$RELAY_PORT" "$id" <<'EOF'
import socket, sys, time
port, mid = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("PUT /v1/queues/q/messages/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           "Content-Length: 100000\r\n\r\n" % mid).encode()
          + ("Id: %s\nDate: 2026-01-01T00:00:00.000Z\n\n" % mid).encode() + b"x" * 1000)
t0 = time.time()
while s.recv(4096):  # until the server closes (10 s at most: the socket timeout)
    pass
print("closed after %.1f s" % (time.time() - t0))
EOF
	stored_nothing q
	head_is 404 q "$id"
}

# ---- limits: answered before the body ----

# slow_req METHOD URL CONTENT-LENGTH [CURL-ARG...]: req with a body that is
# not ready for 5 s, announced with Content-Length and Expect: 100-continue;
# the time to the answer is in $ELAPSED_MS.
slow_req() {
	local method=$1 url=$2 len=$3 slow t0
	shift 3
	t0=$(now_ms)
	req "$method" "$url" -H 'Expect: 100-continue' -H 'Transfer-Encoding:' \
		-H "Content-Length: $len" -T - "$@" < <(exec sleep 5 3>&-)
	slow=$!
	ELAPSED_MS=$(($(now_ms) - t0))
	kill "$slow" 2>/dev/null || true
	echo "answered after $ELAPSED_MS ms"
}

@test "receive: max-size: an upload announced too large is 413 before its body is sent" {
	config q "max-size = 100"
	start_receiver
	local id
	id=$(new_id)
	# a message file may have up to 256 KiB of header block besides the body
	slow_req PUT "$RELAY_URL/v1/queues/q/messages/$id" 300000
	[ "$CODE" = 413 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	slow_req POST "$RELAY_URL/v1/queues/q/messages" 1000
	[ "$CODE" = 413 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	stored_nothing q
}

@test "receive: max-size: a body over it is 413 while streaming, one at the limit is stored" {
	config q "max-size = 100"
	start_receiver
	local id ok
	id=$(new_id)
	message "$id" "$(printf 'x%.0s' {1..101})" >"$T/big"
	put q "$id" "$T/big"
	[ "$CODE" = 413 ]
	stored_nothing q
	head_is 404 q "$id"
	ok=$(new_id)
	message "$ok" "$(printf 'x%.0s' {1..100})" >"$T/fits"
	put q "$ok" "$T/fits"
	[ "$CODE" = 201 ]
	[ "$(body_of "$(only_file q new)" | wc -c)" -eq 100 ]
	req POST "$RELAY_URL/v1/queues/q/messages" --data-binary @<(printf 'y%.0s' {1..101})
	[ "$CODE" = 413 ]
	# streamed without Content-Length: found while writing
	req POST "$RELAY_URL/v1/queues/q/messages" -T - < <(printf 'y%.0s' {1..101})
	[ "$CODE" = 413 ]
	wait_for 5 count_is 0 q tmp
	[ "$(count q new)" -eq 1 ]
}

@test "receive: without a token the answer is 401 before the body is sent" {
	printf 'tok\n' >"$T/tokens"
	chmod 600 "$T/tokens"
	start_receiver "	token-file $T/tokens"
	slow_req PUT "$RELAY_URL/v1/queues/q/messages/$(new_id)" 1000
	[ "$CODE" = 401 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	slow_req POST "$RELAY_URL/v1/queues/q/messages" 1000
	[ "$CODE" = 401 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	[ ! -e "$(qdir q)" ]
}

@test "receive: what the headers decide comes before the body: a bad name 400, an id held 200, a full queue 429" {
	config full "max-length = 1"
	echo local | mq-send full
	start_receiver
	local id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	slow_req PUT "$RELAY_URL/v1/queues/.q/messages/$id" 1000
	[ "$CODE" = 400 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	slow_req PUT "$RELAY_URL/v1/queues/q/messages/$id" 1000
	[ "$CODE" = 200 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	slow_req PUT "$RELAY_URL/v1/queues/full/messages/$(new_id)" 1000
	[ "$CODE" = 429 ]
	[ "$ELAPSED_MS" -lt 3000 ]
	[ "$(count q new)" -eq 1 ] && [ "$(count full new)" -eq 1 ]
	wait_for 5 count_is 0 full tmp
}

@test "receive: max-length: a full queue answers 429 with Retry-After, and takes again once drained" {
	config q "max-length = 1"
	echo local | mq-send q
	start_receiver
	local id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 429 ]
	[[ $(resp_header Retry-After) =~ ^[1-9][0-9]*$ ]]
	req POST "$RELAY_URL/v1/queues/q/messages" --data-binary y
	[ "$CODE" = 429 ]
	[[ $(resp_header Retry-After) =~ ^[1-9][0-9]*$ ]]
	[ "$(count q new)" -eq 1 ]
	wait_for 5 count_is 0 q tmp
	run -0 mq-recv q
	[ "$output" = local ]
	put q "$id" "$T/m"
	[ "$CODE" = 201 ]
	[ "$(name_id "$(only_file q new)")" = "$id" ]
}

@test "receive: min-free: a disk under the queue's reserve answers 503 with Retry-After" {
	config q "min-free = 1000T"
	start_receiver
	local id
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m"
	[ "$CODE" = 503 ]
	[[ $(resp_header Retry-After) =~ ^[1-9][0-9]*$ ]]
	stored_nothing q
}

# uploads_in_flight Q FILE ID [FILE ID...]: PUT each FILE as message ID of
# queue Q on a connection of its own, all at once: every request's headers
# first, then (once the daemon has begun a tmp/ file for each) every body.
# Prints the status of each answer, in order.
uploads_in_flight() {
	python3 - "$RELAY_PORT" "$(qdir "$1")/tmp" "$@" <<'EOF'
import os, socket, sys, time
port, tmp, q, args = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
conns = []
for f, mid in zip(args[::2], args[1::2]):
    body = open(f, "rb").read()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("PUT /v1/queues/%s/messages/%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Length: %d\r\nConnection: close\r\n\r\n" % (q, mid, len(body))).encode())
    conns.append((s, body))
deadline = time.time() + 10
while True:
    try:
        if len([n for n in os.listdir(tmp) if not n.startswith(".")]) >= len(conns):
            break
    except FileNotFoundError:
        pass
    if time.time() > deadline:
        sys.exit("the uploads were not all begun after 10 s")
    time.sleep(0.02)
for s, body in conns:
    s.sendall(body)
for s, _ in conns:
    answer = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    print(answer.split(b" ", 2)[1].decode() if answer else "none")
EOF
}

@test "receive: the same id uploaded twice at once is stored once: one 201, one 200" {
	start_receiver
	local id
	id=$(new_id)
	message "$id" $'twice\n' >"$T/m"
	run -0 uploads_in_flight q "$T/m" "$id" "$T/m" "$id"
	echo "answers:" $output
	[ "$(sort <<<"$output" | tr '\n' ' ')" = "200 201 " ]
	[ "$(name_id "$(only_file q new)")" = "$id" ]
	wait_for 5 count_is 0 q tmp
}

@test "receive: max-length holds against uploads in flight at once: one 201, one 429" {
	config q "max-length = 1"
	start_receiver
	local a b
	a=$(new_id)
	b=$(new_id)
	message "$a" $'a\n' >"$T/a"
	message "$b" $'b\n' >"$T/b"
	run -0 uploads_in_flight q "$T/a" "$a" "$T/b" "$b"
	echo "answers:" $output
	[ "$(count q new)" -le 1 ]
	[ "$(sort <<<"$output" | tr '\n' ' ')" = "201 429 " ]
	wait_for 5 count_is 0 q tmp
}

@test "receive: max-per-address 1: a second connection is turned away while the first is open" {
	start_receiver "	max-per-address 1"
	run -0 python3 - "$RELAY_PORT" <<'EOF'
import socket, sys
port = int(sys.argv[1])
def answer(s):
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    return data.split(b" ", 2)[1].decode() if data else "none"
get = b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
first = socket.create_connection(("127.0.0.1", port), timeout=5)
first.sendall(get)  # not finished: the connection stays open
second = socket.create_connection(("127.0.0.1", port), timeout=5)
second.sendall(get + b"\r\n")
print("second", answer(second))
first.sendall(b"\r\n")
print("first", answer(first))
third = socket.create_connection(("127.0.0.1", port), timeout=5)
third.sendall(get + b"\r\n")
print("third", answer(third))
EOF
	[ "${lines[0]}" = "second none" ]
	[ "${lines[1]}" = "first 200" ]
	[ "${lines[2]}" = "third 200" ]
}

# ---- loops ----

@test "receive: a file that has passed through this relay before is 508 (a loop)" {
	start_receiver "name relay-a"
	local id f
	id=$(new_id)
	message "$id" $'x\n' "Hop: relay-b" "Hop: relay-a" >"$T/loop"
	put q "$id" "$T/loop"
	[ "$CODE" = 508 ]
	stored_nothing q
	message "$id" $'x\n' "hop: relay-a" >"$T/loop2"
	put q "$id" "$T/loop2"
	[ "$CODE" = 508 ]
	stored_nothing q
	# through another relay only: stored, our Hop after the others
	message "$id" $'x\n' "Hop: relay-b" "Hop: relay-a.example" >"$T/ok"
	put q "$id" "$T/ok"
	[ "$CODE" = 201 ]
	f=$(only_file q new)
	[ "$(sed -n '/^$/q; s/^Hop: //p' "$f" | tr '\n' ' ')" = "relay-b relay-a.example relay-a " ]
}

# ---- TLS ----

@test "receive: TLS: curl --cacert is answered, plain HTTP to the TLS port is not" {
	make_certs
	local tls=$T/tls id
	# a key that others can read is refused, as a token file is
	chmod 644 "$tls/server.key"
	relayd_conf "listen 127.0.0.1:8080" "	tls-cert $tls/server.pem" "	tls-key $tls/server.key"
	run --separate-stderr -78 timeout 10 mq-relayd -n -c "$RELAYD_CONF"
	check_error mq-relayd
	[[ $stderr == *"$tls/server.key"* ]]
	chmod 600 "$tls/server.key"
	start_receiver "	tls-cert $tls/server.pem" "	tls-key $tls/server.key"
	[[ $RELAY_URL == https://* ]]
	id=$(new_id)
	message "$id" $'secret\n' >"$T/m"
	req GET "$RELAY_URL/v1/health" --cacert "$tls/ca.pem"
	[ "$CODE" = 200 ]
	put q "$id" "$T/m" --cacert "$tls/ca.pem"
	[ "$CODE" = 201 ]
	[ "$(name_id "$(only_file q new)")" = "$id" ]
	# a client that does not trust the CA refuses the server
	req GET "$RELAY_URL/v1/health"
	[ "$CODE" = 000 ] && [ "$CURL_STATUS" -ne 0 ]
	# plain HTTP gets no HTTP answer, and stores nothing
	req PUT "http://127.0.0.1:$RELAY_PORT/v1/queues/p/messages/$id" -T "$T/m"
	[ "$CODE" = 000 ] && [ "$CURL_STATUS" -ne 0 ]
	[ ! -e "$(qdir p)" ]
}

@test "receive: TLS with tls-client-ca: no client certificate or a foreign one is refused, the CA's is served" {
	make_certs
	local tls=$T/tls id
	start_receiver "	tls-cert $tls/server.pem" "	tls-key $tls/server.key" \
		"	tls-client-ca $tls/ca.pem"
	id=$(new_id)
	message "$id" $'x\n' >"$T/m"
	put q "$id" "$T/m" --cacert "$tls/ca.pem"
	[[ $CODE == 403 || ($CODE == 000 && $CURL_STATUS -ne 0) ]]
	put q "$id" "$T/m" --cacert "$tls/ca.pem" --cert "$tls/rogue.pem" --key "$tls/rogue.key"
	[[ $CODE == 403 || ($CODE == 000 && $CURL_STATUS -ne 0) ]]
	[ ! -e "$(qdir q)" ] || stored_nothing q
	put q "$id" "$T/m" --cacert "$tls/ca.pem" --cert "$tls/client.pem" --key "$tls/client.key"
	[ "$CODE" = 201 ]
	[ "$(name_id "$(only_file q new)")" = "$id" ]
}

# ---- a full disk ----

@test "receive: a disk that fills during an upload is 507 with Retry-After, nothing half-written" {
	small_disk
	export MQ_SPOOL="$SMALL"
	start_receiver
	local id
	id=$(new_id)
	{
		printf 'Id: %s\nDate: 2026-12-01T00:00:00.000Z\n\n' "$id"
		head -c 2097152 /dev/urandom
	} >"$T/big"
	put q "$id" "$T/big"
	[ "$CODE" = 507 ]
	[ -n "$(resp_header Retry-After)" ]
	stored_nothing q
	head_is 404 q "$id"
	# the space is usable again: a small one is stored
	id=$(new_id)
	message "$id" $'small\n' >"$T/little"
	put q "$id" "$T/little"
	[ "$CODE" = 201 ]
	[ "$(count q new)" -eq 1 ]
}

teardown() {
	if [ -n "${SMALL:-}" ] && mountpoint -q "$SMALL"; then
		# the daemon holds the spool open: stop it first
		relayd_teardown
		umount "$SMALL"
	else
		relayd_teardown
	fi
}

@test "receive: the markers of one commit are links to one file of 'ID DIGEST' lines, each id finds its own" {
	start_receiver
	local a b c id
	a=$(new_id) b=$(new_id) c=$(new_id)
	for id in "$a" "$b" "$c"; do message "$id" "body of $id"$'\n' >"$T/$id"; done
	run -0 uploads_in_flight q "$T/$a" "$a" "$T/$b" "$b" "$T/$c" "$c"
	[ "$(tr '\n' ' ' <<<"$output")" = "201 201 201 " ]
	local r=$(qdir q)/received
	for id in "$a" "$b" "$c"; do
		[ -f "$r/$id" ]
		# the line of its own id holds the digest of the file as it was sent
		[ "$(grep "^$id " "$r/$id" | cut -d' ' -f2)" = "$(content_digest "$T/$id")" ]
	done
	stat -c '%n %i %h' "$r"/* # the names of one commit share an inode
	# a retry with the same body is a duplicate, another body a conflict,
	# whichever line of a shared file is its own
	for id in "$a" "$b" "$c"; do
		put q "$id" "$T/$id" -H "Content-Digest: $(content_digest "$T/$id")"
		[ "$CODE" = 200 ]
		message "$id" "another body"$'\n' >"$T/other"
		put q "$id" "$T/other" -H "Content-Digest: $(content_digest "$T/other")"
		[ "$CODE" = 409 ]
	done
	[ "$(count q new)" -eq 3 ]
}

@test "receive: a marker of one digest line (one file per id) is still read" {
	start_receiver
	local id
	id=$(new_id)
	message "$id" $'old\n' >"$T/m"
	mkdir -p "$(qdir q)/received"
	content_digest "$T/m" >"$(qdir q)/received/$id"
	put q "$id" "$T/m" -H "Content-Digest: $(content_digest "$T/m")"
	[ "$CODE" = 200 ]
	message "$id" $'new\n' >"$T/n"
	put q "$id" "$T/n" -H "Content-Digest: $(content_digest "$T/n")"
	[ "$CODE" = 409 ]
	[ "$(count q new)" -eq 0 ]
}

# ---- POST /v1/queues/Q/batch (PROTOCOL.md 4a) ----

# frame ID FILE [DIGEST]: a batch frame of FILE as message ID on stdout,
# with DIGEST (default: FILE's own; "-" none) as its third word.
frame() {
	local d=${3:-$(content_digest "$2")}
	if [ "$d" = - ]; then
		printf '%s %s\n' "$1" "$(stat -c %s "$2")"
	else
		printf '%s %s %s\n' "$1" "$(stat -c %s "$2")" "$d"
	fi
	cat "$2"
}

# post_batch Q FILE [CURL-ARG...]: POST FILE as a batch to queue Q.
post_batch() {
	local q=$1 f=$2
	shift 2
	req POST "$RELAY_URL/v1/queues/$q/batch" --data-binary @"$f" \
		-H 'Content-Type: application/vnd.spoolmq.batch' "$@"
}

@test "receive: POST /batch stores each frame under its id with our Hop line, a line per frame; sent again, each is held already" {
	start_receiver
	local i ids=() f
	for i in 1 2 3; do
		ids+=("$(new_id)")
		message "${ids[-1]}" "body $i"$'\n' >"$T/m$i"
	done
	{ frame "${ids[0]}" "$T/m1"; frame "${ids[1]}" "$T/m2" -; frame "${ids[2]}" "$T/m3"; } >"$T/batch"
	post_batch q "$T/batch"
	[ "$CODE" = 200 ]
	[ "$BODY" = "$(printf '201 %s stored\n' "${ids[@]}")" ]
	[ "$(count q new)" -eq 3 ]
	[ "$(count q tmp)" -eq 0 ]
	for i in 1 2 3; do
		f=$(files q new | grep "\.${ids[i - 1]}\.")
		body_of "$f" | cmp - <(echo "body $i")
		[ "$(header_of "$f" Hop)" = "$(uname -n):$MQ_SPOOL" ]
	done
	# each marker holds the digest of its own file, as for a PUT
	put q "${ids[1]}" "$T/m2" -H "Content-Digest: $(content_digest "$T/m2")"
	[ "$CODE" = 200 ]
	post_batch q "$T/batch"
	[ "$CODE" = 200 ]
	[ "$BODY" = "$(printf '200 %s held already\n' "${ids[@]}")" ]
	[ "$(count q new)" -eq 3 ]
	# and a consumer gets them in the order of the frames
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'body %s\n' 1 2 3)" ]
}

@test "receive: a batch's frames are answered each as a PUT would be: bad id, wrong Id, digest, held with another body" {
	start_receiver
	local good held other bad="0123456789ABCDEFGHIJKLMNOU"
	good=$(new_id)
	held=$(new_id)
	other=$(new_id)
	message "$good" $'good\n' >"$T/good"
	message "$held" $'first\n' >"$T/held"
	message "$held" $'second\n' >"$T/held2"
	message "$(new_id)" $'x\n' >"$T/wrong-id"
	message "$other" $'x\n' >"$T/other"
	put q "$held" "$T/held" -H "Content-Digest: $(content_digest "$T/held")"
	[ "$CODE" = 201 ]
	{
		frame "$bad" "$T/good"
		frame "$other" "$T/wrong-id"
		frame "$other" "$T/other" "$(content_digest "$T/good")"
		frame "$held" "$T/held2"
		frame "$good" "$T/good"
	} >"$T/batch"
	post_batch q "$T/batch"
	[ "$CODE" = 200 ]
	[ "${#BODY}" -gt 0 ]
	mapfile -t lines <<<"$BODY"
	[ "${#lines[@]}" -eq 5 ]
	[[ ${lines[0]} == "400 $bad bad message id" ]]
	[[ ${lines[1]} == "400 $other "* ]]
	[[ ${lines[2]} == "400 $other digest mismatch: "* ]]
	[[ ${lines[3]} == "409 $held held already with another body "* ]]
	[ "${lines[4]}" = "201 $good stored" ]
	# only the good one is stored, the held one untouched, tmp/ empty
	[ "$(count q new)" -eq 2 ]
	wait_for 5 count_is 0 q tmp
	head_is 404 q "$other"
	run -0 mq-recv -n 0 q
	[ "$output" = "$(printf 'first\ngood\n')" ]
}

@test "receive: a batch that is not frames is 400 and stores none of them: a bad head line, cut inside a frame, empty" {
	start_receiver
	local a b
	a=$(new_id)
	b=$(new_id)
	message "$a" $'a\n' >"$T/a"
	message "$b" $'b\n' >"$T/b"
	{ frame "$a" "$T/a"; echo "$b not-a-size"; cat "$T/b"; } >"$T/bad-head"
	post_batch q "$T/bad-head"
	[ "$CODE" = 400 ]
	[[ $BODY == "batch frame 2: not 'ID SIZE [sha-256=:B64:]'"* ]]
	{ frame "$a" "$T/a"; frame "$b" "$T/b"; } | head -c -3 >"$T/cut"
	post_batch q "$T/cut"
	[ "$CODE" = 400 ]
	[ "$BODY" = "the batch ends inside frame 2" ]
	: >"$T/empty"
	post_batch q "$T/empty"
	[ "$CODE" = 400 ]
	[ "$BODY" = "no frames in the batch" ]
	{ frame "$a" "$T/a"; printf '%0300d\n' 0; } >"$T/long"
	post_batch q "$T/long"
	[ "$CODE" = 400 ]
	[[ $BODY == *"a head line over 191 bytes" ]]
	stored_nothing q
	head_is 404 q "$a"
	# the path takes POST only; a token and the queue's limits apply as to a PUT
	req PUT "$RELAY_URL/v1/queues/q/batch" -T "$T/a"
	[ "$CODE" = 405 ]
	stored_nothing q
}

@test "receive: a batch of more than 1024 frames is 413 as a whole, none of it stored" {
	start_receiver
	python3 - "$T/big" <<'PY'
import sys
alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
with open(sys.argv[1], "wb") as out:
    for i in range(1025):
        n, tail = i, ""
        for _ in range(6):
            tail = alphabet[n % 32] + tail
            n //= 32
        mid = "01M8026ZVVR2V8W4T6Y1" + tail
        f = ("Id: %s\nDate: 2026-12-03T00:00:00.000Z\n\nline %d\n" % (mid, i)).encode()
        out.write(b"%s %d\n" % (mid.encode(), len(f)) + f)
PY
	post_batch q "$T/big"
	[ "$CODE" = 413 ]
	[ "$BODY" = "over 1024 frames in one batch" ]
	stored_nothing q
}

@test "receive: a batch to a token-protected queue without a token is 401; over max-size a frame is 413" {
	printf 'secret q\n' >"$T/tokens"
	chmod 600 "$T/tokens"
	start_receiver "	token-file $T/tokens"
	config q "max-size = 10"
	local a b
	a=$(new_id)
	b=$(new_id)
	message "$a" $'tiny\n' >"$T/a"
	message "$b" "$(printf '%040d' 0)"$'\n' >"$T/b"
	{ frame "$a" "$T/a"; frame "$b" "$T/b"; } >"$T/batch"
	post_batch q "$T/batch"
	[ "$CODE" = 401 ]
	stored_nothing q
	post_batch q "$T/batch" -H "Authorization: Bearer secret"
	[ "$CODE" = 200 ]
	mapfile -t lines <<<"$BODY"
	[ "${lines[0]}" = "201 $a stored" ]
	[[ ${lines[1]} == "413 $b "*"size limit"* ]]
	[ "$(count q new)" -eq 1 ]
}
