/* SPDX-License-Identifier: MIT */
/*
 * natspub: the floor of mq-bridge out.  Plain libnats: js_PublishMsgAsync of
 * N messages of SIZE bytes to SUBJECT, each with its own Nats-Msg-Id (as the
 * bridge sends, so that the stream does the same duplicate tracking), at most
 * WINDOW in flight (PublishAsync.MaxPending), then js_PublishAsyncComplete.
 * No spool, no file: what the cluster and the client allow.
 *
 * usage: natspub URLS SUBJECT N SIZE WINDOW    prints "N SECONDS ERRORS"
 * (seconds from the first publish to the last PubAck; bench/run times the
 * whole process as it does mq-bridge).
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile long errors;

static void on_err(jsCtx *js, jsPubAckErr *pae, void *arg) {
	(void)js, (void)pae, (void)arg;
	__atomic_add_fetch(&errors, 1, __ATOMIC_RELAXED);
}

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
	if (argc != 6) {
		fprintf(stderr, "usage: natspub URLS SUBJECT N SIZE WINDOW\n");
		return 2;
	}
	const char *subj = argv[2];
	long n = atol(argv[3]), size = atol(argv[4]), window = atol(argv[5]);
	natsConnection *nc = NULL;
	jsCtx *js = NULL;
	natsOptions *o = NULL;
	const char *srv[16];
	int ns = 0;
	char *copy = strdup(argv[1]), *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t && ns < 16;
			 t = strtok_r(NULL, ",", &save))
		srv[ns++] = t;
	natsOptions_Create(&o);
	natsOptions_SetServers(o, srv, ns);
	if (natsConnection_Connect(&nc, o) != NATS_OK) {
		fprintf(stderr, "natspub: connect: %s\n", nats_GetLastError(NULL));
		return 1;
	}
	jsOptions jo;
	jsOptions_Init(&jo);
	jo.PublishAsync.MaxPending = window;
	jo.PublishAsync.ErrHandler = on_err;
	natsConnection_JetStream(&js, nc, &jo);
	char *body = malloc((size_t)size + 1);
	memset(body, 'x', (size_t)size);
	body[size - 1] = '\n';
	char stamp[32];
	snprintf(stamp, sizeof stamp, "%ld-%d", (long)time(NULL), (int)getpid());
	double t0 = now();
	for (long i = 0; i < n; i++) {
		char id[64];
		natsMsg *m = NULL;
		snprintf(id, sizeof id, "floor-%s-%ld", stamp, i);
		memcpy(body, id, strlen(id) < (size_t)size ? strlen(id) : (size_t)size);
		natsMsg_Create(&m, subj, NULL, body, (int)size);
		jsPubOptions po;
		jsPubOptions_Init(&po);
		po.MsgId = id;
		if (js_PublishMsgAsync(js, &m, &po) != NATS_OK) {
			natsMsg_Destroy(m);
			errors++;
		}
	}
	jsPubOptions po;
	jsPubOptions_Init(&po);
	po.MaxWait = 60000;
	natsStatus s = js_PublishAsyncComplete(js, &po);
	double t1 = now();
	printf("%ld %.6f %ld\n", n, t1 - t0, errors + (s != NATS_OK));
	jsCtx_Destroy(js);
	natsConnection_Destroy(nc);
	natsOptions_Destroy(o);
	nats_CloseAndWait(2000);
	free(body);
	free(copy);
	return errors || s != NATS_OK;
}
