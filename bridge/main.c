/* SPDX-License-Identifier: MIT */
/*
 * mq-bridge: carry a queue into a NATS JetStream subject (out), or a
 * JetStream durable pull consumer into a queue (in).  This file: options,
 * signals and the connection, which both directions share.
 *
 * A command of its own rather than a kind of forward in mq-relayd: libnats
 * starts threads of its own, and mq-relayd forks handlers; a child forked
 * from a threaded process may only call async-signal-safe functions until
 * it execs, and one forked while another thread holds a libnats (or malloc)
 * lock would inherit it held.  A process of its own also keeps a NATS outage
 * or a libnats fault out of the relay, and is supervised like any service.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "bridge.h"

static const char usage[] =
	"usage: mq-bridge [-D] [-d dir] [-n count] [-s url[,url...]] [-t time]\n"
	"                 [--creds file] [--token-file file] out queue subject\n"
	"       mq-bridge [-D] [-d dir] [-n count] [-s url[,url...]] [-t time]\n"
	"                 [--creds file] [--token-file file] in stream consumer queue\n"
	"\n"
	"  -D                 drain what there is, then exit (default: run until SIGTERM)\n"
	"  -d dir             the spool (default $MQ_SPOOL, else /var/spool/mq)\n"
	"  -n count           out: publishes in flight; in: the fetch batch (default 256)\n"
	"  -s url,...         servers (default $NATS_URL, else nats://127.0.0.1:4222)\n"
	"  -t time            out: the wait for a PubAck (5s); in: a new AckWait (30s)\n"
	"  --creds file       NATS credentials (a .creds file)\n"
	"  --token-file file  a NATS token, read from file\n"
	"  out queue subject  the queue into the JetStream subject\n"
	"  in stream consumer queue  the durable pull consumer into the queue\n";

#define DEFAULT_SERVERS "nats://127.0.0.1:4222"
#define DEFAULT_WINDOW 256
#define MAX_WINDOW 65536

const char *
bridge_strerror(natsStatus s, char *buf, size_t len)
{
	natsStatus last = NATS_OK;
	const char *txt = nats_GetLastError(&last);
	if (txt && *txt && last == s) {
		const char *at = txt[0] == '(' ? strstr(txt, "): ") : NULL; /* "(conn.c:1905): " */
		snprintf(buf, len, "%s", at ? at + 3 : txt);
	}
	else
		snprintf(buf, len, "%s", natsStatus_GetText(s));
	return buf;
}

void
bridge_wake(struct bridge *b)
{
	uint64_t one = 1;
	ssize_t r = write(b->evfd, &one, sizeof one);
	(void)r; /* a full counter still wakes the reader */
}

void
bridge_events(struct bridge *b)
{
	uint64_t n;
	struct signalfd_siginfo si;
	while (read(b->evfd, &n, sizeof n) == (ssize_t)sizeof n)
		;
	while (read(b->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			b->stop = true;
}

void
bridge_rest(struct bridge *b, int64_t ms)
{
	struct pollfd p[2] = {{b->sigfd, POLLIN, 0}, {b->evfd, POLLIN, 0}};
	if (ms > 0 && !b->stop)
		poll(p, 2, ms > 60000 ? 60000 : (int)ms);
	bridge_events(b);
}

int64_t
bridge_jitter(const spool_queue *q, int n)
{
	const struct spool_config *cfg = spool_queue_config(q);
	int64_t d = cfg->backoff_first > 0 ? cfg->backoff_first : 1000;
	for (int i = 1; i < n && d < cfg->backoff_cap; i++)
		d = d > cfg->backoff_cap / 2 ? cfg->backoff_cap : d * 2;
	if (cfg->backoff_cap > 0 && d > cfg->backoff_cap)
		d = cfg->backoff_cap;
	return (int64_t)((double)d * ((double)random() / ((double)RAND_MAX + 1.0)));
}

/* ---- the connection: libnats's callbacks run on its threads ---- */

static void
on_disconnected(natsConnection *nc, void *arg)
{
	struct bridge *b = arg;
	(void)nc;
	if (b->connected && !b->closing)
		cli_warn("disconnected from the NATS server: reconnecting");
	b->connected = 0;
	bridge_wake(b);
}

static void
on_connected(natsConnection *nc, void *arg)
{
	struct bridge *b = arg;
	char url[256] = "";
	natsConnection_GetConnectedUrl(nc, url, sizeof url);
	cli_warn("connected to %s", url);
	b->connected = 1;
	bridge_wake(b);
}

static void
on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *arg)
{
	(void)nc, (void)sub, (void)arg;
	cli_warn("nats: %s", natsStatus_GetText(err));
}

/* The first line of a token file, or die with EX_CONFIG. */
static char *
read_token(const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		cli_die(EX_CONFIG, "token-file %s: %s", path, strerror(errno));
	ssize_t n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0 || !*spool_trim(line))
		cli_die(EX_CONFIG, "token-file %s: no token in it", path);
	return line;
}

int
bridge_connect(struct bridge *b, jsOptions *jo)
{
	natsOptions *o = NULL;
	char err[256];
	natsStatus s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, (const char **)b->servers, b->nservers);
	if (s != NATS_OK)
		cli_die(EX_USAGE, "-s: %s", bridge_strerror(s, err, sizeof err));
	natsOptions_SetName(o, "mq-bridge");
	/* forever, and from the start: the cluster may come after the bridge */
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 250);
	natsOptions_SetReconnectJitter(o, 250, 1000);
	natsOptions_SetTimeout(o, 2000);
	/* a server gone without a word (no RST): found in 10-15 s, not 4 min */
	natsOptions_SetPingInterval(o, 5000);
	natsOptions_SetMaxPingsOut(o, 2);
	natsOptions_SetDisconnectedCB(o, on_disconnected, b);
	natsOptions_SetReconnectedCB(o, on_connected, b);
	natsOptions_SetErrorHandler(o, on_async_error, b);
	if (b->creds && (s = natsOptions_SetUserCredentialsFromFiles(o, b->creds, NULL)) != NATS_OK)
		cli_die(EX_CONFIG, "--creds %s: %s", b->creds, bridge_strerror(s, err, sizeof err));
	if (b->token) {
		natsOptions_SetToken(o, b->token);
		memset(b->token, 0, strlen(b->token));
		free(b->token);
		b->token = NULL;
	}
	/* once in the foreground, so that a refusal (credentials) is told and
	 * ends the bridge; then, if no server answered, in the background */
	s = natsConnection_Connect(&b->nc, o);
	if (s == NATS_NO_SERVER || s == NATS_TIMEOUT || s == NATS_IO_ERROR) {
		cli_warn("no NATS server answers yet (%s): trying in the background",
		         bridge_strerror(s, err, sizeof err));
		natsOptions_SetRetryOnFailedConnect(o, true, on_connected, b);
		s = natsConnection_Connect(&b->nc, o);
	}
	natsOptions_Destroy(o);
	if (s == NATS_OK)
		b->connected = 1;
	else if (s != NATS_NOT_YET_CONNECTED)
		cli_die(s == NATS_CONNECTION_AUTH_FAILED ? EX_NOPERM : EX_CONFIG, "connect to %s: %s",
		        b->servers[0], bridge_strerror(s, err, sizeof err));
	if ((s = natsConnection_JetStream(&b->js, b->nc, jo)) != NATS_OK)
		cli_die(EX_SOFTWARE, "JetStream context: %s", bridge_strerror(s, err, sizeof err));
	return 0;
}

void
bridge_close(struct bridge *b)
{
	b->closing = 1;
	if (b->nc)
		natsConnection_FlushTimeout(b->nc, 2000); /* acks still in the buffer */
	jsCtx_Destroy(b->js);
	natsConnection_Destroy(b->nc);
	b->js = NULL, b->nc = NULL;
	nats_CloseAndWait(5000);
}

static void
split_servers(struct bridge *b, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	if (!copy)
		cli_die(EX_OSERR, "out of memory");
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		char **v = realloc(b->servers, sizeof *v * (size_t)(b->nservers + 1));
		if (!v || !(v[b->nservers] = strdup(spool_trim(t))))
			cli_die(EX_OSERR, "out of memory");
		b->servers = v;
		b->nservers++;
	}
	free(copy);
	if (!b->nservers)
		cli_die(EX_USAGE, "-s: no server given");
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_LONG_HELP,
		{"creds", required_argument, NULL, 'C'},
		{"token-file", required_argument, NULL, 'T'},
		{0},
	};
	struct bridge b = {.window = DEFAULT_WINDOW, .sigfd = -1, .evfd = -1};
	const char *servers = getenv("NATS_URL");
	int c;
	cli_init(argv[0], usage);
	while ((c = getopt_long(argc, argv, "Dd:hn:s:t:V", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			b.creds = optarg;
			break;
		case 'D':
			b.drain = true;
			break;
		case 'd':
			b.dir = optarg;
			break;
		case 'h':
			cli_usage(1);
		case 'n':
			b.window = cli_count("-n", optarg);
			if (b.window < 1 || b.window > MAX_WINDOW)
				cli_die(EX_USAGE, "-n: want 1 to %d", MAX_WINDOW);
			break;
		case 's':
			servers = optarg;
			break;
		case 'T':
			free(b.token);
			b.token = read_token(optarg);
			break;
		case 't':
			b.timeout = cli_duration("-t", optarg);
			if (b.timeout < 100)
				cli_die(EX_USAGE, "-t: want at least 100ms");
			break;
		case 'V':
			cli_version();
		default:
			cli_usage(0);
		}
	}
	argc -= optind, argv += optind;
	if (argc < 1)
		cli_usage(0);
	bool out = strcmp(argv[0], "out") == 0, in = strcmp(argv[0], "in") == 0;
	if ((!out && !in) || argc != (out ? 3 : 4))
		cli_usage(0);
	split_servers(&b, servers && *servers ? servers : DEFAULT_SERVERS);
	/* bad input leaves the spool as it was: these before the queue is made */
	if (b.creds && access(b.creds, R_OK) != 0)
		cli_die(EX_CONFIG, "--creds %s: %s", b.creds, strerror(errno));

	/* signals are read from a signalfd by the main thread: blocked before
	 * libnats makes its threads, which inherit the mask */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((b.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
	    (b.evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		cli_die(EX_OSERR, "signalfd: %s", strerror(errno));
	srandom((unsigned)spool_now() ^ (unsigned)getpid());

	int rc = out ? bridge_out(&b, argv[1], argv[2]) : bridge_in(&b, argv[1], argv[2], argv[3]);
	for (int i = 0; i < b.nservers; i++)
		free(b.servers[i]);
	free(b.servers);
	close(b.sigfd);
	close(b.evfd);
	/* a return, not cli_exit: LeakSanitizer checks a normal end */
	if (fflush(NULL) != 0 && rc == 0)
		rc = EX_IOERR;
	return rc;
}
