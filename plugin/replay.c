/* replay: start-up spool replay — every record not yet released goes back to the writer (the
 * database drops what it already stored), and the origin epochs found are remembered as this
 * broker's own. Broker thread, at init, before the threads start. */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct replay {
	struct mqs_plugin *p;
	struct mqs_epochs *own;
	bool oom; /* a record could not be queued (it stays in the spool for the next start) */
};

/* Adds epoch to e unless it is there. False on out of memory. */
static bool epochs_add(struct mqs_epochs *e, const uint8_t epoch[8])
{
	for(int i = 0; i < e->n; i++) {
		if(memcmp(e->e[i], epoch, 8) == 0) return true;
	}
	uint8_t(*n)[8] = realloc(e->e, (size_t)(e->n + 1) * sizeof(*n));
	if(n == NULL) return false;
	memcpy(n[e->n], epoch, 8);
	e->e = n;
	e->n++;
	return true;
}

void mqs_epochs_free(struct mqs_epochs *e)
{
	if(e == NULL) return;
	free(e->e);
	e->e = NULL;
	e->n = 0;
}

static void replay_one(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size, void *arg)
{
	struct replay *r = arg;
	struct mqs_msg *m = calloc(1, sizeof(*m));

	if(m == NULL || (m->payload = malloc(rec->payload_len ? rec->payload_len : 1)) == NULL) {
		free(m);
		r->oom = true;
		return;
	}
	m->hdr.kind = ITEM_MSG;
	memcpy(m->origin, rec->origin, MQS_ORIGIN_LEN);
	snprintf(m->group, sizeof(m->group), "%.*s", (int)rec->group_len, rec->group);
	snprintf(m->sender, sizeof(m->sender), "%.*s", (int)rec->sender_len, rec->sender);
	if(rec->cid_len) snprintf(m->cid, sizeof(m->cid), "%.*s", (int)rec->cid_len, rec->cid);
	m->qos = rec->qos;
	m->segment = segment;
	m->rec_size = rec_size;
	m->payload_len = rec->payload_len;
	memcpy(m->payload, rec->payload, rec->payload_len);
	/* The epochs of earlier runs: their messages are ours, not another broker's. Without the
	 * epoch the listener would deliver them a second time as remote. */
	if(!epochs_add(r->own, rec->origin)) {
		mqs_item_free(&m->hdr);
		r->oom = true;
		return;
	}
	mqs_queue_push(&r->p->to_writer, &m->hdr);
}

long mqs_replay_spool(struct mqs_plugin *p, struct mqs_epochs *own)
{
	char err[256];
	uint64_t skipped = 0;
	struct replay r = {p, own, false};

	if(!epochs_add(own, p->epoch)) return -1;
	long n = mqs_spool_replay(p->spool, replay_one, &r, &skipped, err, sizeof(err));
	if(n < 0) {
		mqs_plog(NULL, MOSQ_LOG_ERR, "spool replay failed: %s", err);
		return -1;
	}
	if(r.oom) {
		mqs_plog(NULL, MOSQ_LOG_ERR, "spool replay failed: out of memory");
		return -1;
	}
	if(skipped > 0) {
		mqs_plog(NULL, MOSQ_LOG_WARNING, "spool replay ignored %llu bytes of torn records",
		         (unsigned long long)skipped);
	}
	if(n > 0) mqs_plog(NULL, MOSQ_LOG_NOTICE, "replaying %ld spooled messages", n);
	return n;
}
