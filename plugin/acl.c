/* acl: every ACL check for groups/#, users/# and system/# answered from memory (SPEC 3); other
 * topics as plugin_opt_other_topics says. Broker thread only. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <string.h>

#include "plugin.h"
#include "topic.h"

static int other_topics(const struct mqs_plugin *p)
{
	switch(p->cfg.other_topics) {
	case MQS_OTHER_ALLOW:
		return MOSQ_ERR_SUCCESS;
	case MQS_OTHER_DENY:
		return MOSQ_ERR_ACL_DENIED;
	default:
		return MOSQ_ERR_PLUGIN_DEFER;
	}
}

/* Decision for a concrete governed topic. read covers READ and SUBSCRIBE. */
static int governed(struct mqs_plugin *p, const struct mqs_topic *t, const char *uid, bool write)
{
	if(uid == NULL) return MOSQ_ERR_ACL_DENIED;
	switch(t->kind) {
	case MQS_TOPIC_MESSAGES:
	case MQS_TOPIC_RECEIPTS:
		return mqs_is_member(p, t->id, uid) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	case MQS_TOPIC_INBOX:
		/* Only the server publishes here (mosquitto_broker_publish skips WRITE checks). */
		return !write && strcmp(t->id, uid) == 0 ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
	case MQS_TOPIC_ALERTS:
		if(!write) return MOSQ_ERR_SUCCESS;
		{
			struct mqs_user *u = p->users ? hmap_gets(p->users, uid) : NULL;
			return u != NULL && u->admin ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		}
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
}

/* Logs why a client was refused on a governed topic (SPEC 3.1: every refusal has a log line). */
static int refused(struct mqs_plugin *p, const struct mosquitto_evt_acl_check *ev, const char *uid)
{
	const char *what = ev->access == MOSQ_ACL_WRITE ? "publish" : "subscription";
	const char *why = uid == NULL ? "not authenticated as a user" : "not allowed";
	struct mqs_topic t;

	mqs_topic_parse(ev->topic, &t);
	if(uid != NULL && (t.kind == MQS_TOPIC_MESSAGES || t.kind == MQS_TOPIC_RECEIPTS)) {
		why = mqs_group_get(p, t.id) ? "not a member" : "no such group";
	} else if(uid != NULL && t.kind == MQS_TOPIC_ALERTS) {
		why = "only admin users publish alerts";
	} else if(uid != NULL && t.kind == MQS_TOPIC_INBOX) {
		why = ev->access == MOSQ_ACL_WRITE ? "only the server publishes to inboxes" : "another user's inbox";
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqsync: refused %s from '%s' to '%s': %s", what, uid ? uid : "?",
	                     ev->topic, why);
	return MOSQ_ERR_ACL_DENIED;
}

int mqs_on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ev = event_data;
	struct mqs_plugin *p = userdata;
	struct mqs_client *c = mqs_client_get(p, ev->client);
	struct mqs_topic t;

	(void)event;
	/* A held-back original (see message.c) reaches nobody, online or offline. */
	if(ev->access == MOSQ_ACL_READ && ev->payloadlen == p->sentinel_len &&
	   memcmp(ev->payload, p->sentinel, p->sentinel_len) == 0) {
		return MOSQ_ERR_ACL_DENIED;
	}
	if(c != NULL && c->wake) {
		return ev->access == MOSQ_ACL_WRITE && strcmp(ev->topic, p->wake.topic) == 0 ? MOSQ_ERR_SUCCESS
		                                                                             : MOSQ_ERR_ACL_DENIED;
	}
	if(ev->access == MOSQ_ACL_SUBSCRIBE || ev->access == MOSQ_ACL_UNSUBSCRIBE) {
		switch(mqs_filter_classify(ev->topic, &t)) {
		case MQS_FILTER_OTHER:
			return other_topics(p);
		case MQS_FILTER_BAD:
			if(ev->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
			return refused(p, ev, mqs_client_uid(p, ev->client));
		case MQS_FILTER_WILDCARD:
			/* Allowed; each delivery is then checked with READ. */
			return mqs_client_uid(p, ev->client) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		case MQS_FILTER_EXACT: {
			if(ev->access == MOSQ_ACL_UNSUBSCRIBE) return MOSQ_ERR_SUCCESS;
			const char *uid = mqs_client_uid(p, ev->client);
			int rc = governed(p, &t, uid, false);
			return rc == MOSQ_ERR_SUCCESS ? rc : refused(p, ev, uid);
		}
		}
		return MOSQ_ERR_ACL_DENIED;
	}
	mqs_topic_parse(ev->topic, &t);
	if(t.kind == MQS_TOPIC_OTHER) return other_topics(p);
	const char *uid = mqs_client_uid(p, ev->client);
	int rc = governed(p, &t, uid, ev->access == MOSQ_ACL_WRITE);
	/* READ denials are routine filtering of wildcard subscriptions: not logged. */
	if(rc != MOSQ_ERR_SUCCESS && ev->access == MOSQ_ACL_WRITE) return refused(p, ev, uid);
	return rc;
}
