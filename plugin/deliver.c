/* deliver: the last step — everything the threads hand back to the broker thread, in one drain
 * loop: stored messages are stamped and published (SPEC 3.2, 7.3), applied receipts broadcast
 * (3.3), catch-up pages sent to the connection that asked (3.6), state changes applied through state.c and acted on
 * (inbox events 3.4, token revocation), log lines printed. Broker thread only. */
#include <jansson.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgjson.h"
#include "plugin.h"

/* Publishes buf (copied) to topic for every subscriber, or to the connection of clientid only (no
 * READ check: the caller checked). Takes ownership of props. */
static bool publish_to(const char *clientid, const char *topic, const void *buf, size_t len, int qos,
                       mosquitto_property *props)
{
	void *pl = NULL;
	if(len > 0) {
		pl = mosquitto_malloc(len);
		if(pl == NULL) {
			mosquitto_property_free_all(&props);
			return false;
		}
		memcpy(pl, buf, len);
	}
	if(mosquitto_broker_publish(clientid, topic, (int)len, pl, qos, false, props) != MOSQ_ERR_SUCCESS) {
		mosquitto_free(pl);
		mosquitto_property_free_all(&props);
		return false;
	}
	return true;
}

/* Publishes obj (consumed; NULL after an allocation failure publishes nothing), to clientid only
 * when not NULL. */
static void publish_json_to(const char *clientid, const char *topic, json_t *obj, int qos)
{
	char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	if(s != NULL) publish_to(clientid, topic, s, strlen(s), qos, NULL);
	free(s);
	json_decref(obj);
}

static void publish_json(const char *topic, json_t *obj, int qos)
{
	publish_json_to(NULL, topic, obj, qos);
}

/* The message object of SPEC 5.1 in w, byte for byte what mqsyncd's sync and history write
 * (common/msgjson.c). On out of memory w->oom is set; the caller frees w. */
static void message_json(struct jsonw *w, const struct mqs_msg *m)
{
	struct mqs_msg_view v = {
	        .id = m->id,
	        .seq = m->seq,
	        .group = m->group,
	        .group_len = strlen(m->group),
	        .sender = m->sender,
	        .sender_len = strlen(m->sender),
	        .ts = m->ts,
	        .ts_len = strlen(m->ts),
	        .payload = m->payload,
	        .payload_len = m->payload_len,
	        .cid = m->cid[0] ? m->cid : NULL,
	        .cid_len = strlen(m->cid),
	};
	mqs_msgjson_write(w, &v);
}

/* The stamp: user properties id, seq, sender, ts (and cid). NULL on out of memory; the caller
 * owns the list (mosquitto_property_free_all, or hand it to the broker). */
static mosquitto_property *stamp(const struct mqs_msg *m)
{
	char num[24];
	mosquitto_property *props = NULL;

	snprintf(num, sizeof(num), "%lld", (long long)m->id);
	int rc = mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "id", num);
	snprintf(num, sizeof(num), "%lld", (long long)m->seq);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "seq", num);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "sender", m->sender);
	rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "ts", m->ts);
	if(m->cid[0]) rc |= mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "cid", m->cid);
	if(rc != MOSQ_ERR_SUCCESS) mosquitto_property_free_all(&props);
	return props;
}

/* Publishes a stored message, stamped, to its group's subscribers (READ checks pick members), or,
 * replayed by catch-up (SPEC 3.6), to replay_to's connection only, marked replay=1 (envelope:
 * "replay": true). */
static void publish_msg(struct mqs_plugin *p, const struct mqs_msg *m, const char *replay_to)
{
	char topic[128];
	mosquitto_property *props = stamp(m);
	bool ok = false;

	if(props != NULL && replay_to != NULL &&
	   mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "replay", "1") != MOSQ_ERR_SUCCESS)
		mosquitto_property_free_all(&props);
	snprintf(topic, sizeof(topic), "groups/%s/messages", m->group);
	if(props == NULL) {
		/* nothing: logged below */
	} else if(p->cfg.envelope == MQS_ENVELOPE_JSON) {
		struct jsonw w = {0};
		message_json(&w, m);
		if(replay_to != NULL && !w.oom && w.len > 0) {
			w.len--; /* the object's closing brace */
			jsonw_lit(&w, ",\"replay\":true}");
		}
		if(!w.oom && w.s != NULL)
			ok = publish_to(replay_to, topic, w.s, w.len, m->qos, props);
		else
			mosquitto_property_free_all(&props);
		jsonw_free(&w);
	} else {
		ok = publish_to(replay_to, topic, m->payload, m->payload_len, m->qos, props);
	}
	if(!ok) {
		/* Stored, so not lost: the recipients get it by sync (SPEC 3.2's gap rule). */
		mqs_plog(NULL, MOSQ_LOG_ERR,
		         "message %lld (group '%s', seq %lld) not delivered live (out of memory, or refused by the "
		         "broker)",
		         (long long)m->id, m->group, (long long)m->seq);
	} else if(replay_to == NULL) {
		p->stat_delivered++;
	}
}

/* A message back from the writer (or the listener, remote): release its spool record, then
 * publish or report it. */
static void on_msg(struct mqs_plugin *p, const struct mqs_msg *m, enum mqs_drain_mode mode)
{
	if(!m->remote && mode != MQS_DRAIN_START) mqs_spool_release(p->spool, m->segment, m->rec_size);
	if(mode != MQS_DRAIN_LIVE) return;
	if(m->status == MSG_STORED) {
		mqs_state_raise_seq(p->state, m->group, m->seq);
		publish_msg(p, m, NULL);
	} else if(m->status == MSG_DUPLICATE && m->cid[0] != '\0' && memcmp(m->origin, p->epoch, 8) == 0) {
		/* A client resend (not a spool replay): stored once already. cids are unique per sender
		 * across all groups, so a client reusing them per group sees this. */
		mqs_plog(NULL, MOSQ_LOG_INFO,
		         "publish from '%s' to group '%s' with cid '%s' is a duplicate: stored once already", m->sender,
		         m->group, m->cid);
	} else if(m->status == MSG_NO_GROUP) {
		mqs_plog(NULL, MOSQ_LOG_WARNING, "message from '%s' dropped: group '%s' was deleted", m->sender,
		         m->group);
	}
}

/* Broadcasts an applied receipt's resulting cursors to groups/{gid}/receipts. */
static void on_receipt(struct mqs_plugin *p, const struct mqs_receipt *r)
{
	char topic[128];
	const struct mqs_group *g = mqs_state_group(p->state, r->group);

	if(!r->applied || g == NULL) return;
	if((long)mqs_state_member_count(g) > p->cfg.receipts_max_members) return; /* recorded, not broadcast */
	snprintf(topic, sizeof(topic), "groups/%s/receipts", r->group);
	publish_json(topic,
	             json_pack("{s:s,s:I,s:I}", "user", r->user, "delivered", (json_int_t)r->delivered, "read",
	                       (json_int_t)r->read),
	             1);
}

/* Publishes {"event": event, "group": gid} to users/{uid}/inbox. */
static void inbox_event(const char *uid, const char *event, const char *gid)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "users/%s/inbox", uid);
	publish_json(topic, json_pack("{s:s,s:s}", "event", event, "group", gid), 1);
}

/* A catch-up page back from the catch-up thread (catchup.c): to the connection that asked only, if
 * it is still there, each message only while the user is still a member of its group (SPEC 3: no
 * READ check protects a publish to one client); then the sync event on users/{uid}/inbox. */
static void on_catchup(struct mqs_plugin *p, const struct mqs_catchup *c)
{
	char topic[128];
	json_int_t sent = 0;

	if(!mqs_catchup_claim(p, c)) return; /* disconnected meanwhile: the page is dropped */
	for(const struct mqs_item *it = c->msgs; it != NULL; it = it->next) {
		const struct mqs_msg *m = (const struct mqs_msg *)it;
		if(!mqs_state_is_member(p->state, m->group, c->user)) continue;
		publish_msg(p, m, c->clientid);
		sent++;
	}
	snprintf(topic, sizeof(topic), "users/%s/inbox", c->user);
	if(c->failed) {
		mqs_plog(NULL, MOSQ_LOG_WARNING, "catch-up page for '%s' failed: database unavailable", c->user);
		publish_json_to(c->clientid, topic,
		                json_pack("{s:s,s:s?,s:s}", "event", "sync", "id", c->req.id, "error", "unavailable"),
		                1);
		return;
	}
	publish_json_to(c->clientid, topic,
	                json_pack("{s:s,s:s?,s:I,s:b,s:s}", "event", "sync", "id", c->req.id, "count", sent, "has_more",
	                          c->has_more, "next", c->next),
	                1);
}

static void revalidate_cb(const char *uid, void *arg)
{
	mqs_clients_revalidate(arg, uid);
}

/* Applies one state item (consumed) and acts on what changed. */
static void on_state(struct mqs_plugin *p, struct mqs_item *it)
{
	struct mqs_state_change c;

	mqs_state_apply(&p->state, it, &c);
	if(c.replaced != NULL) {
		/* Connected users whose tokens were revoked while we were not listening. */
		mqs_state_each_user(c.replaced, revalidate_cb, p);
		mqs_state_free(c.replaced);
	}
	if(c.first_load) {
		mqs_plog(NULL, MOSQ_LOG_NOTICE, "state loaded: %zu users, %zu groups", mqs_state_user_count(p->state),
		         mqs_state_group_count(p->state));
	}
	if(c.user[0] != '\0') mqs_clients_revalidate(p, c.user);
	if(c.member == MQS_MEMBER_ADDED) inbox_event(c.member_user, "member_added", c.member_group);
	if(c.member == MQS_MEMBER_REMOVED) {
		inbox_event(c.member_user, "member_removed", c.member_group);
		mqs_clients_removed(p, c.member_user, c.member_group);
	}
}

bool mqs_deliver_drain(struct mqs_plugin *p, enum mqs_drain_mode mode)
{
	/* Clear first: a poke that races with the take below sends a new wake-up. */
	if(mode == MQS_DRAIN_LIVE) mqs_wake_clear(&p->wake);
	struct mqs_item *it = mqs_queue_take(&p->to_broker, 0, NULL);
	bool any = it != NULL;

	while(it != NULL) {
		struct mqs_item *next = it->next;
		it->next = NULL;
		switch(it->kind) {
		case ITEM_MSG:
			on_msg(p, (struct mqs_msg *)it, mode);
			mqs_item_free(it);
			break;
		case ITEM_RECEIPT:
			if(mode == MQS_DRAIN_LIVE) on_receipt(p, (struct mqs_receipt *)it);
			mqs_item_free(it);
			break;
		case ITEM_CATCHUP:
			if(mode == MQS_DRAIN_LIVE) on_catchup(p, (const struct mqs_catchup *)it);
			mqs_item_free(it);
			break;
		case ITEM_LOG:
			mqs_plog(NULL, ((struct mqs_logline *)it)->level, "%s", ((struct mqs_logline *)it)->text);
			mqs_item_free(it);
			break;
		default:
			if(mode != MQS_DRAIN_STOP)
				on_state(p, it);
			else
				mqs_item_free(it);
			break;
		}
		it = next;
	}
	return any;
}
