/* Unit tests for plugin/acl.c's mqs_acl_decide (with plugin/state.c): every governed topic kind,
 * members, non-members, admins, READ/WRITE/SUBSCRIBE/UNSUBSCRIBE, wildcards, other_topics. No
 * broker: the callback's neighbours are faked below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* Fakes of what mqs_on_acl_check calls (not exercised here). */
struct mqs_client *mqs_client_get(struct mqs_plugin *p, const struct mosquitto *client)
{
	(void)p;
	(void)client;
	return NULL;
}

const char *mqs_client_uid(struct mqs_plugin *p, const struct mosquitto *client)
{
	(void)p;
	(void)client;
	return NULL;
}

const char *mqs_client_name(struct mqs_plugin *p, const struct mosquitto *client)
{
	(void)p;
	(void)client;
	return NULL;
}

bool mqs_client_connected(struct mqs_plugin *p, const struct mosquitto *client)
{
	(void)p;
	(void)client;
	return true;
}

void mqs_plog(const struct mosquitto *client, int level, const char *fmt, ...)
{
	(void)client;
	(void)level;
	(void)fmt;
}

void mqs_refusal_log(struct mqs_plugin *p, const struct mosquitto *client, const char *kind, const char *why,
                     const char *fmt, ...)
{
	(void)p;
	(void)client;
	(void)kind;
	(void)why;
	(void)fmt;
}

#define ALLOW MOSQ_ERR_SUCCESS
#define DENY  MOSQ_ERR_ACL_DENIED
#define DEFER MOSQ_ERR_PLUGIN_DEFER

#define SHARE_WHY "shared subscriptions on governed topics are for admin users only"

struct acl_case {
	const char *uid;
	int access;
	const char *topic;
	int rc;
	const char *why; /* NULL: not logged */
};

/* alice: member of g1; bob: admin user, member of g2 (as admin); carol: no groups. g3: empty. */
static struct mqs_state *fixture(void)
{
	struct mqs_state *st = mqs_state_new();
	assert_non_null(st);
	const char *users[] = {"alice", "bob", "carol"};
	for(size_t i = 0; i < 3; i++) {
		struct mqs_user *u = mqs_user_new(users[i], strcmp(users[i], "bob") == 0);
		assert_non_null(u);
		assert_true(mqs_state_add_user(st, u));
	}
	assert_true(mqs_state_add_group(st, "g1", 5));
	assert_true(mqs_state_add_group(st, "g2", 0));
	assert_true(mqs_state_add_group(st, "g3", 0));
	assert_true(mqs_state_add_member(st, "g1", "alice", ROLE_MEMBER));
	assert_true(mqs_state_add_member(st, "g2", "bob", ROLE_ADMIN));
	assert_true(mqs_state_add_member(st, "nope", "alice", ROLE_MEMBER)); /* unknown group: ignored */
	return st;
}

static void run_cases(const struct mqs_state *st, int other, const struct acl_case *cases, size_t n)
{
	for(size_t i = 0; i < n; i++) {
		const struct acl_case *c = &cases[i];
		struct mqs_acl_decision d = mqs_acl_decide(st, other, c->uid, c->access, c->topic);
		if(d.rc != c->rc || (d.why == NULL) != (c->why == NULL) || (d.why && strcmp(d.why, c->why) != 0)) {
			fail_msg("case %zu: %s %d %s: got rc %d why '%s', want rc %d why '%s'", i,
			         c->uid ? c->uid : "(none)", c->access, c->topic, d.rc, d.why ? d.why : "(null)", c->rc,
			         c->why ? c->why : "(null)");
		}
	}
}

static void test_group_topics(void **unused)
{
	static const struct acl_case cases[] = {
	        /* messages: members only; WRITE refusals say why, READ denials are silent */
	        {"alice", MOSQ_ACL_WRITE, "groups/g1/messages", ALLOW, NULL},
	        {"alice", MOSQ_ACL_READ, "groups/g1/messages", ALLOW, NULL},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "groups/g1/messages", ALLOW, NULL},
	        {"carol", MOSQ_ACL_WRITE, "groups/g1/messages", DENY, "not a member"},
	        {"carol", MOSQ_ACL_READ, "groups/g1/messages", DENY, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "groups/g1/messages", DENY, "not a member"},
	        {"alice", MOSQ_ACL_WRITE, "groups/g9/messages", DENY, "no such group"},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "groups/g9/messages", DENY, "no such group"},
	        {"alice", MOSQ_ACL_WRITE, "groups/g3/messages", DENY, "not a member"},
	        /* an admin user is no member of a group it does not belong to */
	        {"bob", MOSQ_ACL_WRITE, "groups/g1/messages", DENY, "not a member"},
	        {"bob", MOSQ_ACL_WRITE, "groups/g2/messages", ALLOW, NULL},
	        /* ...but reads every group, existing or not, read-only (SPEC 3.7) */
	        {"bob", MOSQ_ACL_READ, "groups/g1/messages", ALLOW, NULL},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "groups/g1/messages", ALLOW, NULL},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "groups/g9/messages", ALLOW, NULL},
	        {"bob", MOSQ_ACL_READ, "groups/g1/receipts", ALLOW, NULL},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "groups/g3/receipts", ALLOW, NULL},
	        {"bob", MOSQ_ACL_WRITE, "groups/g1/receipts", DENY, "not a member"},
	        {"bob", MOSQ_ACL_READ, "users/alice/inbox", DENY, NULL},
	        /* receipts: the same rule */
	        {"alice", MOSQ_ACL_WRITE, "groups/g1/receipts", ALLOW, NULL},
	        {"alice", MOSQ_ACL_READ, "groups/g1/receipts", ALLOW, NULL},
	        {"carol", MOSQ_ACL_WRITE, "groups/g1/receipts", DENY, "not a member"},
	        {"carol", MOSQ_ACL_READ, "groups/g1/receipts", DENY, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "groups/g1/receipts", DENY, "not a member"},
	        /* no user */
	        {NULL, MOSQ_ACL_WRITE, "groups/g1/messages", DENY, "not authenticated as a user"},
	        {NULL, MOSQ_ACL_READ, "groups/g1/messages", DENY, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "groups/g1/messages", DENY, "not authenticated as a user"},
	        /* unsubscribing is always allowed */
	        {"carol", MOSQ_ACL_UNSUBSCRIBE, "groups/g1/messages", ALLOW, NULL},
	        {NULL, MOSQ_ACL_UNSUBSCRIBE, "groups/g1/messages", ALLOW, NULL},
	};
	struct mqs_state *st = fixture();
	(void)unused;
	run_cases(st, MQS_OTHER_DEFER, cases, sizeof(cases) / sizeof(cases[0]));
	mqs_state_free(st);
}

static void test_inbox_alerts_bad(void **unused)
{
	static const struct acl_case cases[] = {
	        {"alice", MOSQ_ACL_READ, "users/alice/inbox", ALLOW, NULL},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "users/alice/inbox", ALLOW, NULL},
	        {"alice", MOSQ_ACL_READ, "users/carol/inbox", DENY, NULL},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "users/carol/inbox", DENY, "another user's inbox"},
	        {"alice", MOSQ_ACL_WRITE, "users/alice/inbox", DENY, "only the server publishes to inboxes"},
	        {"bob", MOSQ_ACL_WRITE, "users/alice/inbox", DENY, "only the server publishes to inboxes"},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "users/alice/inbox", DENY, "not authenticated as a user"},
	        /* sync: {uid} publishes catch-up requests, nobody subscribes or reads */
	        {"alice", MOSQ_ACL_WRITE, "users/alice/sync", ALLOW, NULL},
	        {"bob", MOSQ_ACL_WRITE, "users/alice/sync", DENY, "another user's sync topic"},
	        {NULL, MOSQ_ACL_WRITE, "users/alice/sync", DENY, "not authenticated as a user"},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "users/alice/sync", DENY, "nobody subscribes to sync topics"},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "users/+/sync", DENY, "not allowed"},
	        {"alice", MOSQ_ACL_READ, "users/alice/sync", DENY, NULL},
	        {"bob", MOSQ_ACL_READ, "users/alice/sync", DENY, NULL},
	        /* alerts: everyone reads, admin users write */
	        {"carol", MOSQ_ACL_READ, "system/alerts", ALLOW, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "system/alerts", ALLOW, NULL},
	        {"bob", MOSQ_ACL_WRITE, "system/alerts", ALLOW, NULL},
	        {"alice", MOSQ_ACL_WRITE, "system/alerts", DENY, "only admin users publish alerts"},
	        {"dave", MOSQ_ACL_WRITE, "system/alerts", DENY, "only admin users publish alerts"},
	        {NULL, MOSQ_ACL_READ, "system/alerts", DENY, NULL},
	        /* governed prefixes that name nothing we allow */
	        {"alice", MOSQ_ACL_WRITE, "groups/g1/foo", DENY, "not allowed"},
	        {"alice", MOSQ_ACL_READ, "groups/g1/foo", DENY, NULL},
	        {"alice", MOSQ_ACL_SUBSCRIBE, "groups/g1/foo", DENY, "not allowed"},
	        {"alice", MOSQ_ACL_UNSUBSCRIBE, "groups/g1/foo", ALLOW, NULL},
	        {"alice", MOSQ_ACL_WRITE, "system/other", DENY, "not allowed"},
	        {NULL, MOSQ_ACL_WRITE, "users/x/y", DENY, "not authenticated as a user"},
	};
	struct mqs_state *st = fixture();
	(void)unused;
	run_cases(st, MQS_OTHER_ALLOW, cases, sizeof(cases) / sizeof(cases[0]));
	mqs_state_free(st);
}

static void test_wildcards(void **unused)
{
	static const struct acl_case cases[] = {
	        /* a wildcard over governed topics is allowed for any user; READ filters deliveries */
	        {"carol", MOSQ_ACL_SUBSCRIBE, "groups/+/messages", ALLOW, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "groups/#", ALLOW, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "#", ALLOW, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "+/+/inbox", ALLOW, NULL},
	        /* no user: a filter under a governed prefix can deliver nothing to it; one that merely
	           overlaps governed topics is an other-topics filter (other_topics decides) */
	        {NULL, MOSQ_ACL_SUBSCRIBE, "groups/+/messages", DENY, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "#", DEFER, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "+/+", DEFER, NULL},
	        /* shared subscriptions on governed topics: admin users only (SPEC 3) */
	        {"alice", MOSQ_ACL_SUBSCRIBE, "$share/s/groups/g1/messages", DENY, SHARE_WHY},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "$share/s/groups/g1/messages", DENY, SHARE_WHY},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "$share/s/groups/+/messages", DENY, SHARE_WHY},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "$share/s/#", DENY, SHARE_WHY},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "$share/s/#", DENY, SHARE_WHY},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "$share/s/groups/g1/messages", ALLOW, NULL},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "$share/s/groups/+/messages", ALLOW, NULL},
	        {"bob", MOSQ_ACL_SUBSCRIBE, "$share/s/users/alice/inbox", DENY, "another user's inbox"},
	        {"alice", MOSQ_ACL_UNSUBSCRIBE, "$share/s/groups/g1/messages", ALLOW, NULL},
	        /* ...and on other topics they are other topics */
	        {"carol", MOSQ_ACL_SUBSCRIBE, "$share/s/foo/bar", DEFER, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "$share/s/foo/#", DEFER, NULL},
	        /* a wildcard that can only match ungoverned topics is an other topic */
	        {"carol", MOSQ_ACL_SUBSCRIBE, "foo/#", DEFER, NULL},
	};
	static const struct acl_case anonymous_allow[] = {
	        {NULL, MOSQ_ACL_SUBSCRIBE, "#", ALLOW, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "+/+", ALLOW, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "+/#", ALLOW, NULL},
	        {NULL, MOSQ_ACL_SUBSCRIBE, "groups/#", DENY, NULL},
	        {NULL, MOSQ_ACL_READ, "groups/g1/messages", DENY, NULL},
	        {NULL, MOSQ_ACL_READ, "system/alerts", DENY, NULL},
	        {NULL, MOSQ_ACL_READ, "foo/bar", ALLOW, NULL},
	};
	static const struct acl_case anonymous_deny[] = {
	        {NULL, MOSQ_ACL_SUBSCRIBE, "#", DENY, NULL},
	        {"carol", MOSQ_ACL_SUBSCRIBE, "#", ALLOW, NULL},
	};
	struct mqs_state *st = fixture();
	(void)unused;
	run_cases(st, MQS_OTHER_DEFER, cases, sizeof(cases) / sizeof(cases[0]));
	run_cases(st, MQS_OTHER_ALLOW, anonymous_allow, sizeof(anonymous_allow) / sizeof(anonymous_allow[0]));
	run_cases(st, MQS_OTHER_DENY, anonymous_deny, sizeof(anonymous_deny) / sizeof(anonymous_deny[0]));
	mqs_state_free(st);
}

static void test_other_topics(void **unused)
{
	static const int others[] = {MQS_OTHER_DEFER, MQS_OTHER_ALLOW, MQS_OTHER_DENY};
	static const int rcs[] = {DEFER, ALLOW, DENY};
	static const int accesses[] = {MOSQ_ACL_READ, MOSQ_ACL_WRITE, MOSQ_ACL_SUBSCRIBE, MOSQ_ACL_UNSUBSCRIBE};
	struct mqs_state *st = fixture();
	(void)unused;
	for(size_t o = 0; o < 3; o++) {
		for(size_t a = 0; a < 4; a++) {
			struct acl_case cases[] = {
			        {"alice", accesses[a], "foo/bar", rcs[o], NULL},
			        {NULL, accesses[a], "foo/bar", rcs[o], NULL},
			        {"carol", accesses[a], "group/g1/messages", rcs[o], NULL},
			};
			run_cases(st, others[o], cases, sizeof(cases) / sizeof(cases[0]));
		}
	}
	/* governed topics ignore other_topics */
	struct acl_case governed[] = {{"carol", MOSQ_ACL_WRITE, "groups/g1/messages", DENY, "not a member"}};
	run_cases(st, MQS_OTHER_ALLOW, governed, 1);
	mqs_state_free(st);
}

/* State changes: a membership added or removed changes the decision and is reported. */
static void test_state_changes(void **unused)
{
	struct mqs_state *st = mqs_state_new(), *loaded = fixture();
	struct mqs_state_change c;
	(void)unused;
	assert_non_null(st);

	struct mqs_snapshot *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->hdr.kind = ITEM_SNAPSHOT;
	s->state = loaded;
	mqs_state_apply(&st, &s->hdr, &c);
	assert_ptr_equal(st, loaded);
	assert_true(c.first_load);
	assert_non_null(c.replaced);
	mqs_state_free(c.replaced);

	struct mqs_member_change *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->hdr.kind = ITEM_MEMBER;
	m->exists = true;
	snprintf(m->group, sizeof(m->group), "g1");
	snprintf(m->user, sizeof(m->user), "carol");
	m->role = ROLE_MEMBER;
	mqs_state_apply(&st, &m->hdr, &c);
	assert_int_equal(c.member, MQS_MEMBER_ADDED);
	assert_string_equal(c.member_user, "carol");
	assert_int_equal(mqs_acl_decide(st, MQS_OTHER_DEFER, "carol", MOSQ_ACL_WRITE, "groups/g1/messages").rc, ALLOW);

	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->hdr.kind = ITEM_MEMBER;
	snprintf(m->group, sizeof(m->group), "g1");
	snprintf(m->user, sizeof(m->user), "carol");
	mqs_state_apply(&st, &m->hdr, &c);
	assert_int_equal(c.member, MQS_MEMBER_REMOVED);
	assert_int_equal(mqs_acl_decide(st, MQS_OTHER_DEFER, "carol", MOSQ_ACL_WRITE, "groups/g1/messages").rc, DENY);
	mqs_state_free(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_group_topics),  cmocka_unit_test(test_inbox_alerts_bad),
	        cmocka_unit_test(test_wildcards),     cmocka_unit_test(test_other_topics),
	        cmocka_unit_test(test_state_changes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
