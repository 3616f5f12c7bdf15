/* message: group publishes and receipts intercepted in MESSAGE (SPEC 3.1, 3.3), and everything that
 * comes back from the database threads: live delivery after commit (SPEC 3.2, 7.3), receipt
 * broadcasts, inbox events (3.4), state changes, log lines. Broker thread only.
 *
 * Holding a publish back: the original is spooled and queued for the writer, then its payload is
 * replaced by this process's sentinel, which every READ check denies (acl.c), so the unstamped
 * original reaches no subscriber. After commit the stamped copy is published with
 * mosquitto_broker_publish. */
#include <jansson.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mqtt_protocol.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "plugin.h"
#include "topic.h"

static uint64_t now_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

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

static int refuse(struct mqs_plugin *p, const char *uid, const char *topic, const char *why)
{
	p->stat_refused++;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqsync: refused publish from '%s' to '%s': %s", uid ? uid : "?", topic,
	                     why);
	return MOSQ_ERR_ACL_DENIED;
}

/* Finds the cid user property. Returns 0 when absent, 1 when found (copied into cid), -1 when
 * invalid (why set). */
static int find_cid(const mosquitto_property *props, char cid[65], const char **why)
{
	char *name = NULL, *value = NULL;
	int found = 0;
	const mosquitto_property *prop =
	        mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);

	while(prop != NULL) {
		if(name != NULL && strcmp(name, "cid") == 0 && found == 0) {
			size_t n = value ? strlen(value) : 0;
			if(n == 0 || n > 64) {
				*why = "cid must be 1 to 64 bytes";
				found = -1;
			} else {
				memcpy(cid, value, n + 1);
				found = 1;
			}
		}
		mosquitto_free(name);
		mosquitto_free(value);
		name = value = NULL;
		prop = mosquitto_property_read_string_pair(prop, MQTT_PROP_USER_PROPERTY, &name, &value, true);
	}
	return found;
}

static int on_group_message(struct mqs_plugin *p, struct mosquitto_evt_message *ev, const char *uid, const char *gid)
{
	const char *why = NULL;
	struct mqs_msg *m;
	char err[256];

	if(uid == NULL || !mqs_is_member(p, gid, uid)) return refuse(p, uid, ev->topic, "not a member");
	if((long)ev->payloadlen > p->cfg.max_payload)
		return refuse(p, uid, ev->topic, "payload larger than max_payload");
	m = calloc(1, sizeof(*m));
	if(m == NULL) return refuse(p, uid, ev->topic, "out of memory");
	if(find_cid(ev->properties, m->cid, &why) < 0) {
		free(m);
		return refuse(p, uid, ev->topic, why);
	}
	m->hdr.kind = ITEM_MSG;
	memcpy(m->origin, p->epoch, 8);
	uint64_t n = p->next_origin++;
	for(int i = 0; i < 8; i++) m->origin[8 + i] = (uint8_t)(n >> (56 - 8 * i));
	snprintf(m->group, sizeof(m->group), "%s", gid);
	snprintf(m->sender, sizeof(m->sender), "%s", uid);
	m->qos = ev->qos;
	m->received_ms = now_ms();
	m->payload_len = ev->payloadlen;
	m->payload = malloc(ev->payloadlen ? ev->payloadlen : 1);
	if(m->payload == NULL) {
		free(m);
		return refuse(p, uid, ev->topic, "out of memory");
	}
	memcpy(m->payload, ev->payload, ev->payloadlen);

	struct mqs_spool_rec rec = {
	        .received_ms = m->received_ms,
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
	/* Backpressure (SPEC 7.5): refuse rather than accept what the spool cannot hold. */
	if(mqs_spool_pending_bytes(p->spool) + m->rec_size > (uint64_t)p->cfg.spool_max_bytes) {
		mqs_item_free(&m->hdr);
		p->stat_refused++;
		if(p->last_backpressure_log != time(NULL)) {
			p->last_backpressure_log = time(NULL);
			mosquitto_log_printf(
			        MOSQ_LOG_WARNING,
			        "mqsync: refused publish from '%s' to '%s': spool full (%llu bytes pending, "
			        "limit %ld); is the database reachable?",
			        uid, ev->topic, (unsigned long long)mqs_spool_pending_bytes(p->spool),
			        p->cfg.spool_max_bytes);
		}
		return MOSQ_ERR_ACL_DENIED;
	}
	if(!mqs_spool_append(p->spool, &rec, &m->segment, err, sizeof(err))) {
		mqs_item_free(&m->hdr);
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqsync: spool append failed: %s", err);
		return refuse(p, uid, ev->topic, "spool write failed");
	}
	if(hold_back(p, ev) != MOSQ_ERR_SUCCESS) {
		/* Spooled already: it will be stored; only the hold-back failed, so refuse delivery of
		 * the original by disconnecting (an error code other than ACL_DENIED). */
		mqs_queue_push(&p->to_writer, &m->hdr);
		return MOSQ_ERR_NOMEM;
	}
	p->stat_accepted++;
	mqs_queue_push(&p->to_writer, &m->hdr);
	return MOSQ_ERR_SUCCESS;
}

static int on_receipt(struct mqs_plugin *p, struct mosquitto_evt_message *ev, const char *uid, const char *gid)
{
	int64_t d, r;
	const char *why = NULL;
	struct mqs_group *g = mqs_group_get(p, gid);

	if(uid == NULL || g == NULL || !mqs_is_member(p, gid, uid)) return refuse(p, uid, ev->topic, "not a member");
	if(!mqs_receipt_parse(ev->payload, ev->payloadlen, &d, &r, &why)) return refuse(p, uid, ev->topic, why);
	if(d > g->last_seq || r > g->last_seq) return refuse(p, uid, ev->topic, "seq beyond the group's last message");
	struct mqs_receipt *rc = calloc(1, sizeof(*rc));
	if(rc == NULL) return refuse(p, uid, ev->topic, "out of memory");
	rc->hdr.kind = ITEM_RECEIPT;
	snprintf(rc->group, sizeof(rc->group), "%s", gid);
	snprintf(rc->user, sizeof(rc->user), "%s", uid);
	rc->delivered = d;
	rc->read = r;
	/* The broadcast is the resulting cursor, published after the update commits. */
	if(hold_back(p, ev) != MOSQ_ERR_SUCCESS) {
		free(rc);
		return refuse(p, uid, ev->topic, "out of memory");
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
	default:
		return MOSQ_ERR_SUCCESS;
	}
}

/* Publishes buf (copied) to topic for every subscriber. Takes ownership of props. */
static void publish(const char *topic, const void *buf, size_t len, int qos, mosquitto_property *props)
{
	void *pl = NULL;
	if(len > 0) {
		pl = mosquitto_malloc(len);
		if(pl == NULL) {
			mosquitto_property_free_all(&props);
			return;
		}
		memcpy(pl, buf, len);
	}
	if(mosquitto_broker_publish(NULL, topic, (int)len, pl, qos, false, props) != MOSQ_ERR_SUCCESS) {
		mosquitto_free(pl);
		mosquitto_property_free_all(&props);
	}
}

static void publish_json(const char *topic, json_t *obj, int qos)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	if(s != NULL) publish(topic, s, strlen(s), qos, NULL);
	free(s);
	json_decref(obj);
}

/* The message object of SPEC 5.1. Returns a new reference, or NULL on out of memory. */
static json_t *message_object(const struct mqs_msg *m)
{
	json_t *o = json_pack("{s:I,s:s,s:I,s:s,s:s}", "id", (json_int_t)m->id, "group", m->group, "seq",
	                      (json_int_t)m->seq, "sender", m->sender, "ts", m->ts);
	if(o == NULL) return NULL;
	json_t *text = json_stringn(m->payload, m->payload_len); /* NULL unless valid UTF-8 */
	if(text != NULL) {
		json_object_set_new(o, "payload", text);
		json_object_set_new(o, "encoding", json_string("utf8"));
	} else {
		size_t cap = 4 * ((m->payload_len + 2) / 3) + 1;
		unsigned char *b64 = malloc(cap);
		if(b64 == NULL) {
			json_decref(o);
			return NULL;
		}
		EVP_EncodeBlock(b64, m->payload, (int)m->payload_len);
		json_object_set_new(o, "payload", json_string((char *)b64));
		json_object_set_new(o, "encoding", json_string("base64"));
		free(b64);
	}
	if(m->cid[0]) json_object_set_new(o, "cid", json_string(m->cid));
	return o;
}

static void deliver(struct mqs_plugin *p, const struct mqs_msg *m)
{
	char topic[128], num[24];
	mosquitto_property *props = NULL;

	snprintf(topic, sizeof(topic), "groups/%s/messages", m->group);
	snprintf(num, sizeof(num), "%lld", (long long)m->id);
	int rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "id", num);
	snprintf(num, sizeof(num), "%lld", (long long)m->seq);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "seq", num);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "sender", m->sender);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "ts", m->ts);
	if(m->cid[0]) rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "cid", m->cid);
	if(rc != MOSQ_ERR_SUCCESS) {
		mosquitto_property_free_all(&props);
		return;
	}
	p->stat_delivered++;
	if(p->cfg.envelope == MQS_ENVELOPE_JSON) {
		json_t *o = message_object(m);
		char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
		json_decref(o);
		if(s != NULL)
			publish(topic, s, strlen(s), m->qos, props);
		else
			mosquitto_property_free_all(&props);
		free(s);
	} else {
		publish(topic, m->payload, m->payload_len, m->qos, props);
	}
}

void mqs_inbox_event(struct mqs_plugin *p, const char *uid, const char *event, const char *gid)
{
	char topic[128];
	(void)p;
	snprintf(topic, sizeof(topic), "users/%s/inbox", uid);
	publish_json(topic, json_pack("{s:s,s:s}", "event", event, "group", gid), 1);
}

static void on_receipt_result(struct mqs_plugin *p, const struct mqs_receipt *r)
{
	char topic[128];
	struct mqs_group *g = mqs_group_get(p, r->group);

	if(!r->applied || g == NULL) return;
	if((long)hmap_count(g->members) > p->cfg.receipts_max_members) return; /* recorded, not broadcast */
	snprintf(topic, sizeof(topic), "groups/%s/receipts", r->group);
	publish_json(topic,
	             json_pack("{s:s,s:I,s:I}", "user", r->user, "delivered", (json_int_t)r->delivered, "read",
	                       (json_int_t)r->read),
	             1);
}

void mqs_drain(struct mqs_plugin *p)
{
	/* Clear first: a poke that races with the take below sends a new wake-up. */
	mqs_wake_clear(&p->wake);
	struct mqs_item *it = mqs_queue_take(&p->to_broker, 0, NULL);
	while(it != NULL) {
		struct mqs_item *next = it->next;
		it->next = NULL;
		switch(it->kind) {
		case ITEM_MSG: {
			struct mqs_msg *m = (struct mqs_msg *)it;
			if(!m->remote) mqs_spool_release(p->spool, m->segment, m->rec_size);
			if(m->status == MSG_STORED) {
				struct mqs_group *g = mqs_group_get(p, m->group);
				if(g != NULL && m->seq > g->last_seq) g->last_seq = m->seq;
				deliver(p, m);
			} else if(m->status == MSG_DUPLICATE && m->cid[0] != '\0' &&
			          memcmp(m->origin, p->epoch, 8) == 0) {
				/* A client resend (not a spool replay): stored once already. cids are unique per
				 * sender across all groups, so a client reusing them per group sees this. */
				mosquitto_log_printf(
				        MOSQ_LOG_INFO,
				        "mqsync: publish from '%s' to group '%s' with cid '%s' is a duplicate: "
				        "stored once already",
				        m->sender, m->group, m->cid);
			} else if(m->status == MSG_NO_GROUP) {
				mosquitto_log_printf(MOSQ_LOG_WARNING,
				                     "mqsync: message from '%s' dropped: group '%s' was deleted",
				                     m->sender, m->group);
			}
			mqs_item_free(it);
			break;
		}
		case ITEM_RECEIPT:
			on_receipt_result(p, (struct mqs_receipt *)it);
			mqs_item_free(it);
			break;
		case ITEM_LOG: {
			struct mqs_logline *l = (struct mqs_logline *)it;
			mosquitto_log_printf(l->level, "mqsync: %s", l->text);
			mqs_item_free(it);
			break;
		}
		default:
			mqs_state_apply(p, it);
			break;
		}
		it = next;
	}
}

static void replay_one(const struct mqs_spool_rec *rec, uint64_t segment, size_t rec_size, void *arg)
{
	struct mqs_plugin *p = arg;
	struct mqs_msg *m = calloc(1, sizeof(*m));

	if(m == NULL) return; /* stays in the spool, replayed at the next start */
	m->hdr.kind = ITEM_MSG;
	memcpy(m->origin, rec->origin, MQS_ORIGIN_LEN);
	snprintf(m->group, sizeof(m->group), "%.*s", (int)rec->group_len, rec->group);
	snprintf(m->sender, sizeof(m->sender), "%.*s", (int)rec->sender_len, rec->sender);
	if(rec->cid_len) snprintf(m->cid, sizeof(m->cid), "%.*s", (int)rec->cid_len, rec->cid);
	m->qos = rec->qos;
	m->received_ms = rec->received_ms;
	m->segment = segment;
	m->rec_size = rec_size;
	m->payload_len = rec->payload_len;
	m->payload = malloc(rec->payload_len ? rec->payload_len : 1);
	if(m->payload == NULL) {
		free(m);
		return;
	}
	memcpy(m->payload, rec->payload, rec->payload_len);
	/* Remember the epochs of earlier runs: their messages are ours, not another broker's. */
	bool known = false;
	for(int i = 0; i < p->own_epoch_count && !known; i++) known = memcmp(p->own_epochs[i], rec->origin, 8) == 0;
	if(!known) {
		uint8_t(*e)[8] = realloc(p->own_epochs, (size_t)(p->own_epoch_count + 1) * sizeof(*e));
		if(e != NULL) {
			memcpy(e[p->own_epoch_count], rec->origin, 8);
			p->own_epochs = e;
			p->own_epoch_count++;
		}
	}
	mqs_queue_push(&p->to_writer, &m->hdr);
}

long mqs_spool_replay_all(struct mqs_plugin *p)
{
	char err[256];
	uint64_t skipped = 0;
	long n = mqs_spool_replay(p->spool, replay_one, p, &skipped, err, sizeof(err));

	if(n < 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqsync: spool replay failed: %s", err);
		return -1;
	}
	if(skipped > 0) {
		mosquitto_log_printf(MOSQ_LOG_WARNING, "mqsync: spool replay ignored %llu bytes of torn records",
		                     (unsigned long long)skipped);
	}
	if(n > 0) mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqsync: replaying %ld spooled messages", n);
	return n;
}
