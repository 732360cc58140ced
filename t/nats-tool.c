/* SPDX-License-Identifier: MIT */
/*
 * nats-tool: the tests' hands on a NATS cluster, for want of the nats CLI
 * in Debian 12 (natscli is not packaged).  Not installed.
 *
 *   nats-tool -s URLS wait SECS                 until JetStream answers
 *   nats-tool -s URLS stream NAME SUBJ R [DUP_S [MAXMSG]]   add a stream (R replicas)
 *   nats-tool -s URLS consumer STREAM NAME ACKWAIT_MS   add a durable pull consumer
 *   nats-tool -s URLS pub SUBJ N PREFIX [FIRST]  publish PREFIX-i, i = FIRST.., each
 *                                              with Nats-Msg-Id PREFIX-i, retried until
 *                                              acked (the stream drops a duplicate)
 *   nats-tool -s URLS dump STREAM               "SEQ MSGID BODY HEADERS" of every message
 *   nats-tool -s URLS leader STREAM             the stream's leader (server name)
 *
 * Every wait is bounded; exit 0, or 1 with a line on stderr.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static natsConnection *nc;

/* A number argument, or exit 1. */
static long
num(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (end == s || *end) {
		fprintf(stderr, "nats-tool: bad number '%s'\n", s);
		exit(1);
	}
	return v;
}
static jsCtx *js;

static int64_t
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
die(const char *what, natsStatus s, jsErrCode jerr)
{
	fprintf(stderr, "nats-tool: %s: %s (%s, err_code %d)\n", what, natsStatus_GetText(s),
	        nats_GetLastError(NULL), (int)jerr);
	exit(1);
}

static void
connect_to(const char *urls)
{
	natsOptions *o = NULL;
	const char *v[16];
	int n = 0;
	char *copy = strdup(urls), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
		v[n++] = t;
	natsOptions_Create(&o);
	natsOptions_SetServers(o, v, n);
	natsOptions_SetMaxReconnect(o, -1);
	natsOptions_SetReconnectWait(o, 100);
	natsOptions_SetTimeout(o, 1000);
	natsStatus s = NATS_ERR;
	for (int64_t end = now_ms() + 20000; now_ms() < end;) {
		if ((s = natsConnection_Connect(&nc, o)) == NATS_OK)
			break;
		usleep(100000);
	}
	if (s != NATS_OK)
		die("connect", s, 0);
	natsOptions_Destroy(o);
	free(copy);
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.Wait = 3000;
	if ((s = natsConnection_JetStream(&js, nc, &jo)) != NATS_OK)
		die("jetstream", s, 0);
}

/* Retry op until it works or secs pass (a cluster electing its leaders). */
#define RETRY(secs, what, op)                                                                       \
	do {                                                                                        \
		natsStatus s_;                                                                      \
		jsErrCode jerr = 0;                                                                 \
		int64_t end_ = now_ms() + (secs) * 1000;                                            \
		while ((s_ = (op)) != NATS_OK && now_ms() < end_)                                   \
			usleep(200000);                                                             \
		if (s_ != NATS_OK)                                                                  \
			die(what, s_, jerr);                                                        \
	} while (0)

int
main(int argc, char **argv)
{
	if (argc < 4 || strcmp(argv[1], "-s") != 0) {
		fprintf(stderr, "usage: nats-tool -s URLS wait|stream|consumer|pub|dump|leader ...\n");
		return 1;
	}
	connect_to(argv[2]);
	const char *cmd = argv[3];
	char **a = argv + 4;
	int na = argc - 4;
	if (strcmp(cmd, "wait") == 0 && na == 1) {
		jsAccountInfo *ai = NULL;
		RETRY(num(a[0]), "account info", js_GetAccountInfo(&ai, js, NULL, &jerr));
		jsAccountInfo_Destroy(ai);
	} else if (strcmp(cmd, "stream") == 0 && na >= 3) {
		jsStreamConfig sc;
		jsStreamInfo *si = NULL;
		const char *subj[1] = {a[1]};
		jsStreamConfig_Init(&sc);
		sc.Name = a[0];
		sc.Subjects = subj;
		sc.SubjectsLen = 1;
		sc.Replicas = num(a[2]);
		sc.Storage = js_FileStorage;
		if (na >= 4)
			sc.Duplicates = (int64_t)num(a[3]) * 1000000000LL;
		if (na >= 5)
			sc.MaxMsgSize = num(a[4]);
		RETRY(30, "add stream", js_AddStream(&si, js, &sc, NULL, &jerr));
		jsStreamInfo_Destroy(si);
	} else if (strcmp(cmd, "consumer") == 0 && na == 3) {
		jsConsumerConfig cc;
		jsConsumerInfo *ci = NULL;
		jsConsumerConfig_Init(&cc);
		cc.Durable = a[1];
		cc.AckPolicy = js_AckExplicit;
		cc.AckWait = (int64_t)num(a[2]) * 1000000LL;
		cc.MaxDeliver = -1;
		RETRY(30, "add consumer", js_AddConsumer(&ci, js, a[0], &cc, NULL, &jerr));
		jsConsumerInfo_Destroy(ci);
	} else if (strcmp(cmd, "pub") == 0 && na >= 3) {
		long n = num(a[1]), first = na >= 4 ? num(a[3]) : 0;
		for (long i = first; i < first + n; i++) {
			char id[128];
			snprintf(id, sizeof id, "%s-%ld", a[2], i);
			jsPubOptions po;
			jsPubOptions_Init(&po);
			po.MsgId = id;
			po.MaxWait = 2000;
			jsPubAck *pa = NULL;
			RETRY(60, "publish", js_Publish(&pa, js, a[0], id, (int)strlen(id), &po, &jerr));
			jsPubAck_Destroy(pa);
		}
	} else if (strcmp(cmd, "dump") == 0 && na == 1) {
		jsStreamInfo *si = NULL;
		RETRY(30, "stream info", js_GetStreamInfo(&si, js, a[0], NULL, &jerr));
		uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
		jsStreamInfo_Destroy(si);
		for (uint64_t seq = first; seq && seq <= last; seq++) {
			natsMsg *m = NULL;
			RETRY(30, "get message", js_GetMsg(&m, js, a[0], seq, NULL, &jerr));
			const char *id = "-", **keys = NULL;
			int nk = 0;
			natsMsgHeader_Get(m, "Nats-Msg-Id", &id);
			printf("%llu %s ", (unsigned long long)seq, id);
			for (int i = 0; i < natsMsg_GetDataLength(m); i++) {
				char c = natsMsg_GetData(m)[i];
				if (c == '\n')
					fputs("\\n", stdout);
				else
					putchar(c);
			}
			putchar(' ');
			if (natsMsgHeader_Keys(m, &keys, &nk) == NATS_OK) {
				for (int i = 0; i < nk; i++) {
					const char *v = NULL;
					natsMsgHeader_Get(m, keys[i], &v);
					printf("%s%s=%s", i ? ";" : "", keys[i], v ? v : "");
				}
				free((void *)keys);
			}
			putchar('\n');
			natsMsg_Destroy(m);
		}
	} else if (strcmp(cmd, "leader") == 0 && na == 1) {
		jsStreamInfo *si = NULL;
		RETRY(30, "stream info", js_GetStreamInfo(&si, js, a[0], NULL, &jerr));
		printf("%s\n", si->Cluster && si->Cluster->Leader ? si->Cluster->Leader : "");
		jsStreamInfo_Destroy(si);
	} else {
		fprintf(stderr, "nats-tool: bad command or arguments\n");
		return 1;
	}
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	nats_CloseAndWait(2000);
	return 0;
}
