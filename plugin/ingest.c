/* ingest: the MESSAGE callback — the first step of a group message (SPEC 3.1) or receipt (3.3):
 * validation, the spool append, the hand-off to the writer, and holding the original back.
 * Broker thread only.
 *
 * Holding a publish back: the original is spooled and queued for the writer, then its payload is
 * replaced by this process's sentinel, which every READ check denies (acl.c), so the unstamped
 * original reaches no subscriber. After commit deliver.c publishes the stamped copy. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"
#include "topic.h"

/* Replaces the event's payload with the sentinel. The broker frees the old payload. */
static int hold_back(struct mqs_plugin *p, struct mosquitto_evt_message *ev)
{
	void *s = mosquitto_malloc(p->sentinel_len);
	if(s == NULL) return MOSQ_ERR_NOMEM;
	memcpy(s, p->sentinel, p->sentinel_len);
	ev->payload = s;
	ev->payloadlen = (uint32_t)p->sentinel_len;
	ev->retain = false;
	return MOSQ_ERR_SUCCESS;
}

static int refuse(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, const char *uid, const char *why)
{
	p->stat_refused++;
	mqs_refusal_log(p, ev->client, "publish", why, "refused publish from '%s' to '%s': %s", uid ? uid : "?",
	                ev->topic, why);
	return MOSQ_ERR_ACL_DENIED;
}

/* Mosquitto's property list node: the leading fields of struct mqtt5__property, identical in 2.0.x
 * (lib/property_mosq.h) and 2.1.x (libcommon/property_common.h; 2.1 adds fields after identifier).
 * Upstream 2.0.x exports no property reader (src/linker.syms), so the list is walked through this
 * layout (SPEC 9: only symbols every supported broker exports). Checked by test_compat_symbols.py
 * and by every cid test running on all three brokers. */
struct mosq_string {
	char *v;
	uint16_t len;
};
struct mosq_property {
	struct mosq_property *next;
	union {
		uint8_t i8;
		uint16_t i16;
		uint32_t i32;
		uint32_t varint;
		struct mosq_string bin;
		struct mosq_string s;
	} value;
	struct mosq_string name;
	int32_t identifier;
};

/* Finds the cid user property (the first one named "cid"). Returns 0 when absent, 1 when found
 * (copied into cid), -1 when invalid (why set). */
static int find_cid(const mosquitto_property *props, char cid[65], const char **why)
{
	for(const struct mosq_property *prop = (const void *)props; prop != NULL; prop = prop->next) {
		if(prop->identifier != MQTT_PROP_USER_PROPERTY || prop->name.v == NULL) continue;
		if(prop->name.len != 3 || memcmp(prop->name.v, "cid", 3) != 0) continue;
		size_t n = prop->value.s.v ? prop->value.s.len : 0;
		if(n == 0 || n > 64) {
			*why = "cid must be 1 to 64 bytes";
			return -1;
		}
		memcpy(cid, prop->value.s.v, n);
		cid[n] = '\0';
		return 1;
	}
	return 0;
}

/* A new message item for the event, with the next origin; NULL with *why set when refused
 * (invalid cid, out of memory). The caller frees it with mqs_item_free. */
static struct mqs_msg *msg_new(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, const char *uid,
                               const char *gid, const char **why)
{
	struct mqs_msg *m = calloc(1, sizeof(*m));

	*why = "out of memory";
	if(m == NULL) return NULL;
	m->hdr.kind = ITEM_MSG;
	if(find_cid(ev->properties, m->cid, why) < 0) {
		free(m);
		return NULL;
	}
	memcpy(m->origin, p->epoch, 8);
	mqs_be64_put(m->origin + 8, p->next_origin++);
	snprintf(m->group, sizeof(m->group), "%s", gid);
	snprintf(m->sender, sizeof(m->sender), "%s", uid);
	m->qos = ev->qos;
	m->payload_len = ev->payloadlen;
	m->payload = malloc(ev->payloadlen ? ev->payloadlen : 1);
	if(m->payload == NULL) {
		free(m);
		return NULL;
	}
	memcpy(m->payload, ev->payload, ev->payloadlen);
	return m;
}

/* Appends m to the spool unless that would pass spool_max_bytes (SPEC 7.5: refuse rather than
 * accept what the spool cannot hold). Returns NULL when spooled, else the refusal reason ("" when
 * already logged). */
static const char *spool_msg(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, struct mqs_msg *m)
{
	char err[256];
	struct mqs_spool_rec rec = {
	        .received_ms = (uint64_t)mqs_now_ms(CLOCK_REALTIME), /* on disk only, never read back */
	        .qos = m->qos,
	        .group = m->group,
	        .group_len = (uint8_t)strlen(m->group),
	        .sender = m->sender,
	        .sender_len = (uint8_t)strlen(m->sender),
	        .cid = m->cid[0] ? m->cid : NULL,
	        .cid_len = (uint8_t)strlen(m->cid),
	        .payload = m->payload,
	        .payload_len = m->payload_len,
	};
	memcpy(rec.origin, m->origin, MQS_ORIGIN_LEN);
	m->rec_size = mqs_spool_rec_size(&rec);
	if(mqs_spool_pending_bytes(p->spool) + m->rec_size > (uint64_t)p->cfg.spool_max_bytes) {
		p->stat_refused++;
		if(p->last_backpressure_log != time(NULL)) {
			p->last_backpressure_log = time(NULL);
			mqs_plog(
			        ev->client, MOSQ_LOG_WARNING,
			        "refused publish from '%s' to '%s': spool full (%llu bytes pending, limit %ld); is the "
			        "database reachable?",
			        m->sender, ev->topic, (unsigned long long)mqs_spool_pending_bytes(p->spool),
			        p->cfg.spool_max_bytes);
		}
		return "";
	}
	if(!mqs_spool_append(p->spool, &rec, &m->segment, err, sizeof(err))) {
		mqs_plog(NULL, MOSQ_LOG_ERR, "spool append failed: %s", err);
		return "spool write failed";
	}
	return NULL;
}

static int on_group_message(struct mqs_plugin *p, struct mosquitto_evt_message *ev, const char *uid, const char *gid)
{
	const char *why = NULL;
	struct mqs_msg *m;

	if(uid == NULL || !mqs_state_is_member(p->state, gid, uid)) return refuse(p, ev, uid, "not a member");
	if((long)ev->payloadlen > p->cfg.max_payload) return refuse(p, ev, uid, "payload larger than max_payload");
	if((m = msg_new(p, ev, uid, gid, &why)) == NULL) return refuse(p, ev, uid, why);
	if((why = spool_msg(p, ev, m)) != NULL) {
		mqs_item_free(&m->hdr);
		return why[0] ? refuse(p, ev, uid, why) : MOSQ_ERR_ACL_DENIED;
	}
	/* Spooled: it will be stored whatever happens next. */
	mqs_queue_push(&p->to_writer, &m->hdr);
	/* A failed hold-back must not let the original through: an error other than ACL_DENIED
	 * disconnects the client. */
	if(hold_back(p, ev) != MOSQ_ERR_SUCCESS) return MOSQ_ERR_NOMEM;
	p->stat_accepted++;
	return MOSQ_ERR_SUCCESS;
}

static int on_receipt(struct mqs_plugin *p, struct mosquitto_evt_message *ev, const char *uid, const char *gid)
{
	int64_t d, r;
	const char *why = NULL;
	const struct mqs_group *g = mqs_state_group(p->state, gid);

	if(uid == NULL || g == NULL || !mqs_state_is_member(p->state, gid, uid))
		return refuse(p, ev, uid, "not a member");
	if(!mqs_receipt_parse(ev->payload, ev->payloadlen, &d, &r, &why)) return refuse(p, ev, uid, why);
	if(d > g->last_seq || r > g->last_seq) return refuse(p, ev, uid, "seq beyond the group's last message");
	struct mqs_receipt *rc = calloc(1, sizeof(*rc));
	if(rc == NULL) return refuse(p, ev, uid, "out of memory");
	rc->hdr.kind = ITEM_RECEIPT;
	snprintf(rc->group, sizeof(rc->group), "%s", gid);
	snprintf(rc->user, sizeof(rc->user), "%s", uid);
	rc->delivered = d;
	rc->read = r;
	/* The broadcast is the resulting cursor, published after the update commits. */
	if(hold_back(p, ev) != MOSQ_ERR_SUCCESS) {
		free(rc);
		return refuse(p, ev, uid, "out of memory");
	}
	mqs_queue_push(&p->to_writer, &rc->hdr);
	return MOSQ_ERR_SUCCESS;
}

int mqs_on_message(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_message *ev = event_data;
	struct mqs_plugin *p = userdata;
	struct mqs_client *c = mqs_client_get(p, ev->client);
	struct mqs_topic t;

	(void)event;
	if(c != NULL && c->wake) return MOSQ_ERR_ACL_DENIED; /* dropped; the TICK after it drains */
	mqs_topic_parse(ev->topic, &t);
	switch(t.kind) {
	case MQS_TOPIC_MESSAGES:
		return on_group_message(p, ev, mqs_client_uid(p, ev->client), t.id);
	case MQS_TOPIC_RECEIPTS:
		return on_receipt(p, ev, mqs_client_uid(p, ev->client), t.id);
	case MQS_TOPIC_SYNC: /* catch-up over MQTT: catchup.c */
		return mqs_catchup_request(p, ev, mqs_client_uid(p, ev->client), t.id);
	default:
		return MOSQ_ERR_SUCCESS;
	}
}
