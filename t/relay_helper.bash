# SPDX-License-Identifier: MIT
#
# Helpers for the relay tests (t/004*.bats: the HTTP receiver and forward),
# on top of t/helper.bash and t/relayd_helper.bash (load those first): pick
# a free port, start an mq-relayd that listens on it, make HTTP requests with
# curl(1) and look at the answers, build message files, and make a test CA
# with server and client certificates.  Every request has a time limit
# (curl --max-time) and every wait is bounded, as in the other helpers.
#
# start_receiver writes the configuration with relayd_conf and starts the
# daemon with start_relayd, so it uses $MQ_SPOOL, $RELAYD_CONF and
# $RELAYD_LOG: point those elsewhere first to run a second daemon.

# free_port: a TCP port free on 127.0.0.1 right now (bench/lib/freeport.py).
# Someone may take it before the daemon binds it: start_receiver retries.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_receiver [LINE...]: a daemon listening on 127.0.0.1:$RELAY_PORT, its
# base URL in $RELAY_URL (https:// when a LINE sets tls-cert).  LINE... follow
# the listen line: indented ones are its options ("	token-file F"), others
# top-level directives ("name N").  Returns once the port answers HTTP.
start_receiver() {
	local try scheme=http line
	for line in "$@"; do
		[[ $line == *tls-cert* ]] && scheme=https
	done
	for try in 1 2 3; do
		RELAY_PORT=$(free_port)
		RELAY_URL="$scheme://127.0.0.1:$RELAY_PORT"
		relayd_conf "listen 127.0.0.1:$RELAY_PORT" "$@"
		if start_relayd; then
			wait_http "$RELAY_URL/v1/health"
			return
		fi
		# lost the port to someone else: another one; any other failure is final
		grep -q "listen 127.0.0.1:$RELAY_PORT: cannot start" "$RELAYD_LOG" || return 1
	done
	return 1
}

# http_answers URL [CURL-ARG...]: URL gives an HTTP answer (any status).
# Only whether the port answers: a TLS certificate is not checked (-k) here.
http_answers() {
	local code
	code=$(curl -sk --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' "$@") || true
	[ "${code:-000}" != 000 ]
}

# wait_http URL [CURL-ARG...]: wait (10 s at most) until URL answers.
wait_http() { wait_for 10 http_answers "$@"; }

# req METHOD URL [CURL-ARG...]: one request, 5 s at most (a --max-time in
# CURL-ARG wins).  Sets $CODE (000 when there was no HTTP answer; 100 when
# only "100 Continue" came), $CURL_STATUS, $BODY (the answer's body) and
# $RESP_HEAD (a file with the answer's header lines).  Prints a summary,
# which bats shows when the test fails.  HEAD is made with curl -I.
req() {
	local method=$1 url=$2
	shift 2
	local m=(-X "$method")
	[ "$method" = HEAD ] && m=(-I)
	RESP_HEAD="$BATS_TEST_TMPDIR/.resp-head"
	rm -f "$RESP_HEAD" "$BATS_TEST_TMPDIR/.resp-body"
	CURL_STATUS=0
	CODE=$(curl -s --noproxy '*' --max-time 5 "${m[@]}" -D "$RESP_HEAD" \
		-o "$BATS_TEST_TMPDIR/.resp-body" -w '%{http_code}' "$@" "$url") || CURL_STATUS=$?
	BODY=$(cat "$BATS_TEST_TMPDIR/.resp-body" 2>/dev/null) || BODY=
	echo "$method $url -> $CODE (curl $CURL_STATUS): $BODY"
}

# resp_header NAME: the value of header NAME in the last answer of req.
resp_header() {
	sed -n "s/^$1: *//Ip" "$RESP_HEAD" | tr -d '\r' | tail -n 1
}

# json_get EXPR <<<JSON: EXPR, a Python expression over the document j
# (j["counters"]["received"]), printed: strings as they are, the rest as JSON.
json_get() {
	python3 -c 'import json, sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# new_id: a fresh ULID (the time now, 80 random bits).
new_id() {
	local a=0123456789ABCDEFGHJKMNPQRSTVWXYZ t s= i b
	t=$(now_ms)
	for ((i = 0; i < 10; i++)); do
		s=${a:t%32:1}$s
		t=$((t / 32))
	done
	for b in $(od -An -N16 -tu1 /dev/urandom); do
		s+=${a:b%32:1}
	done
	echo "$s"
}

# message ID BODY [HEADER-LINE...]: a message file on stdout, as a relay
# sends it: Id, Date, HEADER-LINE..., the blank line, BODY (as given: add
# the newline yourself).
message() {
	local id=$1 body=$2
	shift 2
	printf 'Id: %s\nDate: %s\n' "$id" "$(date -u +%Y-%m-%dT%H:%M:%S.000Z)"
	[ $# -eq 0 ] || printf '%s\n' "$@"
	printf '\n%s' "$body"
}

# content_digest FILE: the Content-Digest header value of FILE's bytes.
content_digest() {
	python3 -c 'import base64, hashlib, sys
print("sha-256=:%s:" % base64.b64encode(hashlib.sha256(open(sys.argv[1], "rb").read()).digest()).decode())' "$1"
}

# make_certs: a test CA and certificates in $BATS_TEST_TMPDIR/tls (P-256,
# valid two days): ca.pem; server.pem/.key for 127.0.0.1 (CN and SAN);
# client.pem/.key signed by the CA; rogue.pem/.key self-signed.  Keys are
# mode 0600 (mq-relayd refuses others).  Skips the test without openssl.
make_certs() {
	local d="$BATS_TEST_TMPDIR/tls" who ext
	command -v openssl >/dev/null || skip "openssl is not installed"
	mkdir -p "$d"
	(
		set -e
		cd "$d"
		umask 077
		newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
		openssl req -x509 "${newkey[@]}" -keyout ca.key -out ca.pem -days 2 \
			-subj /CN=spoolmq-test-ca -addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign
		openssl req -x509 "${newkey[@]}" -keyout rogue.key -out rogue.pem -days 2 \
			-subj /CN=127.0.0.1
		for who in server client; do
			openssl req "${newkey[@]}" -keyout $who.key -out $who.csr -subj /CN=127.0.0.1
			if [ $who = server ]; then
				ext=$'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth'
			else
				ext='extendedKeyUsage=clientAuth'
			fi
			openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -days 2 \
				-set_serial "0x$(openssl rand -hex 8)" -extfile <(echo "$ext") -out $who.pem
		done
		chmod 644 ./*.pem
	) >"$d/openssl.log" 2>&1 || {
		cat "$d/openssl.log" >&2
		return 1
	}
}
