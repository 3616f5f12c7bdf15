/* acl: every ACL check for groups/#, users/# and system/# answered from memory (SPEC 3); other
 * topics as plugin_opt_other_topics says. mqs_acl_decide is the pure decision (unit-tested in
 * tests/unit/test_acl.c); mqs_on_acl_check adds what only the broker knows (held-back payloads,
 * the wake connection, who the client is and whether it is connected: wills, offline sessions)
 * and logs refusals. Broker thread only. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <string.h>

#include "plugin.h"
#include "topic.h"

static const struct mqs_acl_decision ALLOW = {MOSQ_ERR_SUCCESS, NULL};
static const struct mqs_acl_decision DENY = {MOSQ_ERR_ACL_DENIED, NULL};

static struct mqs_acl_decision other_topics(int other)
{
	struct mqs_acl_decision d = {MOSQ_ERR_PLUGIN_DEFER, NULL};
	if(other == MQS_OTHER_ALLOW) d.rc = MOSQ_ERR_SUCCESS;
	if(other == MQS_OTHER_DENY) d.rc = MOSQ_ERR_ACL_DENIED;
	return d;
}

/* Whether uid may use a concrete governed topic. write: WRITE; otherwise READ or SUBSCRIBE. */
static bool governed(const struct mqs_state *st, const struct mqs_topic *t, const char *uid, bool write)
{
	if(uid == NULL) return false;
	switch(t->kind) {
	case MQS_TOPIC_MESSAGES:
	case MQS_TOPIC_RECEIPTS:
		if(mqs_state_is_member(st, t->id, uid)) return true;
		/* SPEC 3.7: admin users read every group's messages and receipts, publish only as members. */
		return !write && mqs_state_is_admin(st, uid);
	case MQS_TOPIC_INBOX:
		/* Only the server publishes here (mosquitto_broker_publish skips WRITE checks). */
		return !write && strcmp(t->id, uid) == 0;
	case MQS_TOPIC_SYNC:
		/* Catch-up requests (SPEC 3.6): {uid} publishes, nobody subscribes. */
		return write && strcmp(t->id, uid) == 0;
	case MQS_TOPIC_ALERTS:
		return !write || mqs_state_is_admin(st, uid);
	default:
		return false;
	}
}

/* A refusal of topic (as the client sent it) with the reason for the log line. */
static struct mqs_acl_decision refused(const struct mqs_state *st, const char *uid, int access, const char *topic)
{
	struct mqs_acl_decision d = {MOSQ_ERR_ACL_DENIED, uid == NULL ? "not authenticated as a user" : "not allowed"};
	struct mqs_topic t;

	mqs_topic_parse(topic, &t);
	if(uid != NULL && (t.kind == MQS_TOPIC_MESSAGES || t.kind == MQS_TOPIC_RECEIPTS)) {
		d.why = mqs_state_group(st, t.id) ? "not a member" : "no such group";
	} else if(uid != NULL && t.kind == MQS_TOPIC_ALERTS) {
		d.why = "only admin users publish alerts";
	} else if(uid != NULL && t.kind == MQS_TOPIC_INBOX) {
		d.why = access == MOSQ_ACL_WRITE ? "only the server publishes to inboxes" : "another user's inbox";
	} else if(uid != NULL && t.kind == MQS_TOPIC_SYNC) {
		d.why = access == MOSQ_ACL_WRITE ? "another user's sync topic" : "nobody subscribes to sync topics";
	}
	return d;
}

/* SUBSCRIBE and UNSUBSCRIBE: decided on what the filter can match. A shared subscription that can
 * match a governed topic is for admin users only (SPEC 3: a non-member in a member's share would
 * take deliveries the READ check then drops, for the whole share). */
static struct mqs_acl_decision decide_filter(const struct mqs_state *st, int other, const char *uid, int access,
                                             const char *filter)
{
	static const struct mqs_acl_decision SHARE_REFUSED = {MOSQ_ERR_ACL_DENIED,
	                                                      "shared subscriptions on governed topics are for admin "
	                                                      "users only"};
	const char *body = mqs_filter_share_body(filter);
	enum mqs_filter_scope scope;
	struct mqs_topic t;

	scope = mqs_filter_classify(filter, &t);
	if(access == MOSQ_ACL_SUBSCRIBE && body != NULL &&
	   (scope == MQS_FILTER_EXACT || scope == MQS_FILTER_WILDCARD)) {
		if(!mqs_state_is_admin(st, uid)) return SHARE_REFUSED;
	}
	switch(scope) {
	case MQS_FILTER_OTHER:
		return other_topics(other);
	case MQS_FILTER_BAD:
		return access == MOSQ_ACL_UNSUBSCRIBE ? ALLOW : refused(st, uid, access, filter);
	case MQS_FILTER_WILDCARD:
		/* Allowed; each delivery is then checked with READ. A client that is no user gets no
		 * governed message, so a filter that merely overlaps governed topics ("#", "+/+") is an
		 * other-topics filter for it, as on a broker without the plugin (SPEC 3); one under
		 * groups/, users/ or system/ can match nothing it may read. */
		if(uid != NULL) return ALLOW;
		body = body != NULL ? body : filter;
		return (body[0] == '#' || body[0] == '+') ? other_topics(other) : DENY;
	case MQS_FILTER_EXACT:
		if(access == MOSQ_ACL_UNSUBSCRIBE || governed(st, &t, uid, false)) return ALLOW;
		return refused(st, uid, access, body != NULL ? body : filter);
	}
	return DENY;
}

struct mqs_acl_decision mqs_acl_decide(const struct mqs_state *st, int other, const char *uid, int access,
                                       const char *topic)
{
	struct mqs_topic t;

	if(access == MOSQ_ACL_SUBSCRIBE || access == MOSQ_ACL_UNSUBSCRIBE)
		return decide_filter(st, other, uid, access, topic);
	mqs_topic_parse(topic, &t);
	if(t.kind == MQS_TOPIC_OTHER) return other_topics(other);
	if(governed(st, &t, uid, access == MOSQ_ACL_WRITE)) return ALLOW;
	/* READ denials are routine filtering of wildcard subscriptions: not logged. */
	return access == MOSQ_ACL_WRITE ? refused(st, uid, access, topic) : DENY;
}

/* Checks for a client that is not connected (see mqs_client_connected). A WRITE is its will (2.0 and
 * 2.1 check a will with WRITE when they publish it, after DISCONNECT, and never fire MESSAGE for it):
 * refused on every governed topic, or it would go out unstored, unstamped and retained as the client
 * set it (SPEC 3.1). A READ would queue a group message, receipt or inbox event in its session: denied,
 * PostgreSQL holds what it missed (3.6). Returns MOSQ_ERR_PLUGIN_DEFER when the usual rules apply. */
static int offline_check(struct mqs_plugin *p, const struct mosquitto_evt_acl_check *ev)
{
	struct mqs_topic t;

	if(ev->access != MOSQ_ACL_WRITE && ev->access != MOSQ_ACL_READ) return MOSQ_ERR_PLUGIN_DEFER;
	mqs_topic_parse(ev->topic, &t);
	if(t.kind == MQS_TOPIC_OTHER || mqs_client_connected(p, ev->client)) return MOSQ_ERR_PLUGIN_DEFER;
	if(ev->access == MOSQ_ACL_WRITE) {
		const char *name = mqs_client_name(p, ev->client);
		p->stat_refused++;
		mqs_refusal_log(p, ev->client, "will", "governed topic",
		                "refused will of '%s' on '%s'%s: wills on governed topics are never published",
		                name ? name : "?", ev->topic, ev->retain ? " (retained)" : "");
		return MOSQ_ERR_ACL_DENIED;
	}
	if(t.kind == MQS_TOPIC_ALERTS) return MOSQ_ERR_PLUGIN_DEFER; /* alerts still queue, as before */
	return MOSQ_ERR_ACL_DENIED;
}

/* Whether a granted filter can bring group messages or receipts (SPEC 3: a removed member's
 * connections holding such a subscription are disconnected, clients.c). */
static bool may_hold_groups(const char *filter)
{
	struct mqs_topic t;

	switch(mqs_filter_classify(filter, &t)) {
	case MQS_FILTER_WILDCARD:
		return true;
	case MQS_FILTER_EXACT:
		return t.kind == MQS_TOPIC_MESSAGES || t.kind == MQS_TOPIC_RECEIPTS;
	default:
		return false;
	}
}

int mqs_on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ev = event_data;
	struct mqs_plugin *p = userdata;
	struct mqs_client *c = mqs_client_get(p, ev->client);

	(void)event;
	/* A held-back original (see ingest.c) reaches nobody, online or offline. */
	if(ev->access == MOSQ_ACL_READ && ev->payloadlen == p->sentinel_len &&
	   memcmp(ev->payload, p->sentinel, p->sentinel_len) == 0) {
		return MOSQ_ERR_ACL_DENIED;
	}
	if(c != NULL && c->wake) {
		return ev->access == MOSQ_ACL_WRITE && strcmp(ev->topic, p->wake.topic) == 0 ? MOSQ_ERR_SUCCESS
		                                                                             : MOSQ_ERR_ACL_DENIED;
	}
	int rc = offline_check(p, ev);
	if(rc != MOSQ_ERR_PLUGIN_DEFER) return rc;
	const char *uid = mqs_client_uid(p, ev->client);
	struct mqs_acl_decision d = mqs_acl_decide(p->state, p->cfg.other_topics, uid, ev->access, ev->topic);
	const char *kind = ev->access == MOSQ_ACL_WRITE ? "publish" : "subscription";
	if(d.why != NULL) {
		/* SPEC 3.1: every refusal has a log line (throttled). */
		mqs_refusal_log(p, ev->client, kind, d.why, "refused %s from '%s' to '%s': %s", kind, uid ? uid : "?",
		                ev->topic, d.why);
	} else if(d.rc == MOSQ_ERR_SUCCESS && c != NULL && ev->access == MOSQ_ACL_SUBSCRIBE &&
	          may_hold_groups(ev->topic)) {
		c->group_subs = true; /* see mqs_clients_removed */
	}
	return d.rc;
}
