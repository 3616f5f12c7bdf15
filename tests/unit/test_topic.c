/* Unit tests for plugin/topic.c: topic names, subscription filters, receipt payloads and catch-up
 * requests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

#define ID64 "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
#define ID65 ID64 "x"

struct topic_case {
	const char *topic;
	enum mqs_topic_kind kind;
	const char *id;
};

static void test_topic_parse(void **state)
{
	static const struct topic_case cases[] = {
	        {"groups/g1/messages", MQS_TOPIC_MESSAGES, "g1"},
	        {"groups/g1/receipts", MQS_TOPIC_RECEIPTS, "g1"},
	        {"users/alice/inbox", MQS_TOPIC_INBOX, "alice"},
	        {"users/alice/sync", MQS_TOPIC_SYNC, "alice"},
	        {"users/alice/sync/x", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/sync", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/alerts", MQS_TOPIC_ALERTS, ""},
	        {"groups/A-z_09/messages", MQS_TOPIC_MESSAGES, "A-z_09"},
	        {"groups/" ID64 "/messages", MQS_TOPIC_MESSAGES, ID64},
	        {"users/" ID64 "/inbox", MQS_TOPIC_INBOX, ID64},
	        /* governed but malformed */
	        {"groups/" ID65 "/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g.1/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g 1/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups//messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/messages/", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/messages/x", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/foo", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/Messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1/inbox", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/g1", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/+/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"users/alice/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"users/alice/inbox/x", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"users/al!ce/inbox", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"users//inbox", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"users", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/alerts/", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/alerts/x", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/foo", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"system/g1/messages", MQS_TOPIC_GOVERNED_BAD, ""},
	        {"groups/a/b/c/d/e/f/g/h/i/j/k", MQS_TOPIC_GOVERNED_BAD, ""},
	        /* ungoverned */
	        {"", MQS_TOPIC_OTHER, ""},
	        {"/groups/g1/messages", MQS_TOPIC_OTHER, ""},
	        {"$SYS/broker/uptime", MQS_TOPIC_OTHER, ""},
	        {"groupsX/g1/messages", MQS_TOPIC_OTHER, ""},
	        {"Groups/g1/messages", MQS_TOPIC_OTHER, ""},
	        {"SYSTEM/alerts", MQS_TOPIC_OTHER, ""},
	        {"user/alice/inbox", MQS_TOPIC_OTHER, ""},
	        {"sensors/1/temp", MQS_TOPIC_OTHER, ""},
	        {"a", MQS_TOPIC_OTHER, ""},
	        {"/", MQS_TOPIC_OTHER, ""},
	};

	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mqs_topic t;
		memset(&t, 0x55, sizeof(t));
		mqs_topic_parse(cases[i].topic, &t);
		if(t.kind != cases[i].kind || strcmp(t.id, cases[i].id) != 0) {
			fail_msg("topic '%s': kind %d id '%s', want %d '%s'", cases[i].topic, t.kind, t.id,
			         cases[i].kind, cases[i].id);
		}
	}
	struct mqs_topic t;
	mqs_topic_parse(NULL, &t);
	assert_int_equal(t.kind, MQS_TOPIC_OTHER);
}

struct filter_case {
	const char *filter;
	enum mqs_filter_scope scope;
	enum mqs_topic_kind kind; /* for EXACT */
	const char *id;           /* for EXACT */
};

static void test_filter_classify(void **state)
{
	static const struct filter_case cases[] = {
	        /* exact */
	        {"groups/g1/messages", MQS_FILTER_EXACT, MQS_TOPIC_MESSAGES, "g1"},
	        {"groups/g1/receipts", MQS_FILTER_EXACT, MQS_TOPIC_RECEIPTS, "g1"},
	        {"users/u1/inbox", MQS_FILTER_EXACT, MQS_TOPIC_INBOX, "u1"},
	        {"system/alerts", MQS_FILTER_EXACT, MQS_TOPIC_ALERTS, ""},
	        {"$share/workers/groups/g1/messages", MQS_FILTER_EXACT, MQS_TOPIC_MESSAGES, "g1"},
	        {"$share/w/system/alerts", MQS_FILTER_EXACT, MQS_TOPIC_ALERTS, ""},
	        /* exact but governed-bad */
	        {"groups/g/foo", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/bad.id/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"users/u1/inbox/x", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"system/other", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/w/groups/g/foo", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        /* exact, ungoverned */
	        {"foo/bar", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"$SYS/broker/uptime", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"groupsX/g1/messages", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"Groups/g1/messages", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"$share/w/foo/bar", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"$sharex/w/groups/g1/messages", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        /* wildcards matching allowed topics */
	        {"#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/+/messages", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/+/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/alerts", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/messages", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/receipts", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1/messages/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER,
	         ""}, /* '#' also matches its parent level */
	        {"users/+/inbox", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"users/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"users/u1/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"system/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"system/+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"system/alerts/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"$share/w/groups/+/messages", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"$share/w/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        /* first level a wildcard: matches governed-bad and ungoverned topics: conservative */
	        {"+/x", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/g1/foo", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        {"+/a/b/c/#", MQS_FILTER_WILDCARD, MQS_TOPIC_OTHER, ""},
	        /* under a governed prefix, matching nothing allowed */
	        {"groups/+", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/foo", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/+/+", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/+/messages/+", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/bad.id/#", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1/foo/#", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"users/+/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"system/+/+", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"system/foo/#", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        /* wildcards that cannot reach a governed topic */
	        {"foo/#", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"foo/+/messages", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"$SYS/#", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"groupsX/#", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"Groups/+/messages", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        {"$share/w/foo/#", MQS_FILTER_OTHER, MQS_TOPIC_OTHER, ""},
	        /* malformed */
	        {"", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/bad+id/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/g1/messages#", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"groups/#/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"foo/#/bar", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"foo/a+", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"++", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"##", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/w", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/w/", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share//groups/g1/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/w+/groups/g1/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	        {"$share/#/groups/g1/messages", MQS_FILTER_BAD, MQS_TOPIC_OTHER, ""},
	};

	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mqs_topic t;
		enum mqs_filter_scope s;

		memset(&t, 0x55, sizeof(t));
		s = mqs_filter_classify(cases[i].filter, &t);
		if(s != cases[i].scope) {
			fail_msg("filter '%s': scope %d, want %d", cases[i].filter, s, cases[i].scope);
		}
		if(s == MQS_FILTER_EXACT && (t.kind != cases[i].kind || strcmp(t.id, cases[i].id) != 0)) {
			fail_msg("filter '%s': topic %d '%s', want %d '%s'", cases[i].filter, t.kind, t.id,
			         cases[i].kind, cases[i].id);
		}
		assert_true(memchr(t.id, '\0', sizeof(t.id)) != NULL);
		/* topic may be NULL */
		assert_int_equal(mqs_filter_classify(cases[i].filter, NULL), cases[i].scope);
	}
	assert_int_equal(mqs_filter_classify(NULL, NULL), MQS_FILTER_BAD);
}

/* Parses a receipt from a heap copy without a terminating NUL, so ASan catches overreads. */
static bool receipt(const char *text, size_t len, int64_t *d, int64_t *r, const char **why)
{
	char *copy = malloc(len ? len : 1);
	bool ok;

	assert_non_null(copy);
	memcpy(copy, text, len);
	ok = mqs_receipt_parse(copy, len, d, r, why);
	free(copy);
	return ok;
}

#define RECEIPT(s, d, r, why) receipt((s), strlen(s), (d), (r), (why))

static void test_share_body(void **state)
{
	static const char *const not_shares[] = {"$share",     "$share/",     "$share/w",
	                                         "$share//x",  "$share/w/",   "$share/+/x",
	                                         "$share/#/x", "$sharex/w/x", "groups/g1/messages"};
	const char *f = "$share/workers/groups/+/messages";
	(void)state;
	assert_ptr_equal(mqs_filter_share_body(f), f + strlen("$share/workers/"));
	assert_string_equal(mqs_filter_share_body("$share/w/#"), "#");
	for(size_t i = 0; i < sizeof(not_shares) / sizeof(not_shares[0]); i++) {
		if(mqs_filter_share_body(not_shares[i]) != NULL)
			fail_msg("'%s' is no shared subscription", not_shares[i]);
	}
	assert_null(mqs_filter_share_body(NULL));
}

static void test_receipt_valid(void **state)
{
	static const struct {
		const char *text;
		int64_t delivered, read;
	} cases[] = {
	        {"{\"delivered\": 5}", 5, -1},
	        {"{\"read\": 7}", -1, 7},
	        {"{\"delivered\": 9, \"read\": 3}", 9, 3},
	        {"{\"read\":3,\"delivered\":9}", 9, 3},
	        {"{\"delivered\": 0}", 0, -1},
	        {"{\"read\": 9007199254740992}", -1, 9007199254740992LL},
	        {" \n{ \"delivered\" : 1 }\n ", 1, -1},
	};

	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t d = 42, r = 42;
		const char *why = NULL;

		if(!RECEIPT(cases[i].text, &d, &r, &why)) fail_msg("'%s' rejected: %s", cases[i].text, why);
		assert_int_equal(d, cases[i].delivered);
		assert_int_equal(r, cases[i].read);
	}
}

static void test_receipt_rejected(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
	        {"", "empty payload"},
	        {"{}", "empty receipt"},
	        {"   ", "not valid JSON"},
	        {"null", "not valid JSON"},
	        {"5", "not valid JSON"},
	        {"[1]", "not a JSON object"},
	        {"[]", "not a JSON object"},
	        {"{\"delivered\": 1", "not valid JSON"},
	        {"{\"delivered\": 1} x", "not valid JSON"},
	        {"{\"delivered\": 1}{}", "not valid JSON"},
	        {"{\"delivered\": 1, \"delivered\": 2}", "not valid JSON"},
	        {"{\"delivered\": 1, \"seq\": 2}", "unknown key"},
	        {"{\"Delivered\": 1}", "unknown key"},
	        {"{\"\": 1}", "unknown key"},
	        {"{\"delivered\": -1}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": 1.0}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": 1e3}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": \"1\"}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": true}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": null}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": {}}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": [1]}", "delivered must be a non-negative integer"},
	        {"{\"delivered\": 9007199254740993}", "delivered must be a non-negative integer"},
	        {"{\"read\": -5}", "read must be a non-negative integer"},
	        {"{\"read\": 2.5}", "read must be a non-negative integer"},
	        {"{\"delivered\": 3, \"read\": false}", "read must be a non-negative integer"},
	        {"{\"read\": 99999999999999999999999}", "not valid JSON"},
	};

	for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t d = 42, r = 42;
		const char *why = NULL;

		if(RECEIPT(cases[i].text, &d, &r, &why)) fail_msg("'%s' accepted", cases[i].text);
		if(why == NULL || strcmp(why, cases[i].why) != 0) {
			fail_msg("'%s': why '%s', want '%s'", cases[i].text, why ? why : "(null)", cases[i].why);
		}
		assert_int_equal(d, -1);
		assert_int_equal(r, -1);
	}
}

static void test_receipt_binary(void **state)
{
	int64_t d, r;
	const char *why;
	static const char nul_inside[] = "{\"delivered\": 1}\0garbage";
	static const char nul_key[] = "{\"read\\u0000x\": 1}";

	/* A NUL byte after the object is trailing garbage, not an end of string. */
	assert_false(receipt(nul_inside, sizeof(nul_inside) - 1, &d, &r, &why));
	assert_string_equal(why, "not valid JSON");
	assert_false(receipt(nul_key, sizeof(nul_key) - 1, &d, &r, &why));
	/* Only len bytes count: a valid prefix of a longer buffer. */
	assert_true(receipt("{\"read\": 4}trailing", 11, &d, &r, &why));
	assert_int_equal(r, 4);
	assert_false(receipt("\xff\xfe{}", 4, &d, &r, &why));
	/* NULL payload and NULL why */
	assert_false(mqs_receipt_parse(NULL, 0, &d, &r, NULL));
	assert_false(mqs_receipt_parse("{}", 2, &d, &r, NULL));
	assert_true(mqs_receipt_parse("{\"read\":1}", 10, &d, &r, NULL));
}

static void test_sync_req(void **state)
{
	struct mqs_sync_req r;
	const char *why = NULL;
	/* synctoken v1 with one entry (key 0x00000001, position 5): 01 00000001 05 */
	const char *ok = "{\"group\": \"g1\", \"after\": \"AQAAAAEF\", \"limit\": 1000, \"id\": \"p1\"}";

	(void)state;
	assert_true(mqs_sync_req_parse(ok, strlen(ok), &r, &why));
	assert_string_equal(r.group, "g1");
	assert_int_equal(r.limit, 1000);
	assert_true(r.has_token);
	assert_int_equal(r.ntok, 1);
	assert_int_equal(r.tok[0].key, 1);
	assert_int_equal(r.tok[0].seq, 5);
	assert_string_equal(r.id, "p1");
	mqs_sync_req_clear(&r);
	assert_true(mqs_sync_req_parse("{}", 2, &r, &why));
	assert_int_equal(r.limit, SYNCPAGE_LIMIT_DEFAULT);
	assert_false(r.has_token);
	assert_null(r.id);
	assert_string_equal(r.group, "");
	mqs_sync_req_clear(&r);

	static const struct {
		const char *json, *why;
	} bad[] = {
	        {"", "not a JSON object"},
	        {"{", "not a JSON object"},
	        {"[]", "not a JSON object"},
	        {"{} x", "not a JSON object"},
	        {"{\"limit\": 0}", "limit: expected an integer from 1 to 1000"},
	        {"{\"limit\": 1001}", "limit: expected an integer from 1 to 1000"},
	        {"{\"limit\": 1.5}", "limit: expected an integer from 1 to 1000"},
	        {"{\"limit\": \"5\"}", "limit: expected an integer from 1 to 1000"},
	        {"{\"group\": \"a/b\"}", "group: must match [A-Za-z0-9_-]{1,64}"},
	        {"{\"group\": 1}", "group: must match [A-Za-z0-9_-]{1,64}"},
	        {"{\"after\": \"!!\"}", "after: not a token returned as 'next' by this server"},
	        {"{\"after\": 5}", "after: not a token returned as 'next' by this server"},
	        {"{\"id\": 5}", "id: expected a string of at most 256 bytes"},
	        {"{\"wait\": 5}", "unknown key (expected group, after, limit, id)"},
	        {"{\"id\": \"a\", \"id\": \"b\"}", "not a JSON object"},
	        {"{\"id\": \"a\", \"limit\": 0}", "limit: expected an integer from 1 to 1000"},
	};
	for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = NULL;
		assert_false(mqs_sync_req_parse(bad[i].json, strlen(bad[i].json), &r, &why));
		assert_non_null(why);
		assert_string_equal(why, bad[i].why);
		assert_null(r.tok);
		assert_null(r.id);
	}
	char big[400];
	snprintf(big, sizeof(big), "{\"id\": \"%0300d\"}", 0);
	assert_false(mqs_sync_req_parse(big, strlen(big), &r, &why));
	assert_false(mqs_sync_req_parse(NULL, 0, &r, &why));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_topic_parse),    cmocka_unit_test(test_filter_classify),
	        cmocka_unit_test(test_receipt_valid),  cmocka_unit_test(test_receipt_rejected),
	        cmocka_unit_test(test_receipt_binary), cmocka_unit_test(test_sync_req),
	        cmocka_unit_test(test_share_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
