/* Unit tests for plugin/config.c: defaults, every option type, and each rejection names the option. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "config.h"

#define OPT(k, v)                                                                                                      \
	{                                                                                                              \
		(char *)(k), (char *)(v)                                                                               \
	}

static void test_defaults(void **state)
{
	struct mqs_config c;
	char err[256];
	struct mosquitto_opt o[] = {OPT("conninfo", "host=127.0.0.1 port=5432 dbname=mqsync")};

	assert_true(mqs_config_parse(&c, o, 1, err, sizeof(err)));
	assert_string_equal(c.conninfo, "host=127.0.0.1 port=5432 dbname=mqsync");
	assert_string_equal(c.spool_dir, "/var/lib/mqsync");
	assert_true(c.node[0] != '\0');
	assert_true(c.auth);
	assert_int_equal(c.envelope, MQS_ENVELOPE_PROPERTIES);
	assert_int_equal(c.other_topics, MQS_OTHER_DEFER);
	assert_int_equal(c.max_payload, 262144);
	assert_int_equal(c.receipts_max_members, 1000);
	assert_int_equal(c.refusal_log_burst, 5);
	assert_false(c.spool_fsync);
	assert_string_equal(c.wake_address, "127.0.0.1:1883");
	mqs_config_free(&c);
}

static void test_all_set(void **state)
{
	struct mqs_config c;
	char err[256], desc[1024];
	struct mosquitto_opt o[] = {
	        OPT("conninfo", "dbname=x"), OPT("node", "broker-a.1"),        OPT("spool_dir", "/tmp/s"),
	        OPT("auth", "false"),        OPT("envelope", "json"),          OPT("other_topics", "deny"),
	        OPT("max_payload", "1000"),  OPT("receipts_max_members", "0"), OPT("spool_fsync", "on"),
	        OPT("batch_max", "5"),
	};

	assert_true(mqs_config_parse(&c, o, sizeof(o) / sizeof(o[0]), err, sizeof(err)));
	assert_string_equal(c.node, "broker-a.1");
	assert_false(c.auth);
	assert_int_equal(c.envelope, MQS_ENVELOPE_JSON);
	assert_int_equal(c.other_topics, MQS_OTHER_DENY);
	assert_int_equal(c.max_payload, 1000);
	assert_int_equal(c.receipts_max_members, 0);
	assert_int_equal(c.batch_max, 5);
	assert_true(c.spool_fsync);
	mqs_config_describe(&c, desc, sizeof(desc));
	assert_non_null(strstr(desc, "envelope=json"));
	assert_null(strstr(desc, "dbname"));
	mqs_config_free(&c);
}

static void expect_reject(struct mosquitto_opt *o, int n, const char *needle)
{
	struct mqs_config c;
	char err[256] = "";

	assert_false(mqs_config_parse(&c, o, n, err, sizeof(err)));
	if(strstr(err, needle) == NULL) fail_msg("error '%s' does not contain '%s'", err, needle);
	mqs_config_free(&c); /* the caller frees, also after a failure */
	assert_null(c.conninfo);
}

static void test_rejections(void **state)
{
	struct mosquitto_opt unknown[] = {OPT("conninfo", "x"), OPT("dbc", "y")};
	struct mosquitto_opt missing[] = {OPT("node", "a")};
	struct mosquitto_opt empty[] = {OPT("conninfo", "x"), OPT("node", "")};
	struct mosquitto_opt twice[] = {OPT("conninfo", "x"), OPT("conninfo", "y")};
	struct mosquitto_opt badint[] = {OPT("conninfo", "x"), OPT("max_payload", "10k")};
	struct mosquitto_opt range[] = {OPT("conninfo", "x"), OPT("max_payload", "0")};
	struct mosquitto_opt huge[] = {OPT("conninfo", "x"), OPT("batch_max", "99999999999999999999")};
	struct mosquitto_opt badbool[] = {OPT("conninfo", "x"), OPT("auth", "yes please")};
	struct mosquitto_opt badenum[] = {OPT("conninfo", "x"), OPT("envelope", "JSON")};
	struct mosquitto_opt badnode[] = {OPT("conninfo", "x"), OPT("node", "a/b")};
	struct mosquitto_opt relspool[] = {OPT("conninfo", "x"), OPT("spool_dir", "spool")};
	struct mosquitto_opt badbool2[] = {OPT("conninfo", "x"), OPT("spool_fsync", "maybe")};
	struct mosquitto_opt badenum2[] = {OPT("conninfo", "x"), OPT("other_topics", "Allow")};
	struct mosquitto_opt unknown2[] = {OPT("conninfo", "x"), OPT("envelopes", "json")};
	struct mosquitto_opt badnode2[] = {OPT("conninfo", "x"), OPT("node", "a b")};

	expect_reject(unknown, 2, "plugin_opt_dbc: unknown option");
	expect_reject(missing, 1, "plugin_opt_conninfo: required");
	expect_reject(empty, 2, "plugin_opt_node: empty value");
	expect_reject(twice, 2, "plugin_opt_conninfo: given more than once");
	expect_reject(badint, 2, "plugin_opt_max_payload");
	expect_reject(range, 2, "plugin_opt_max_payload");
	expect_reject(huge, 2, "plugin_opt_batch_max");
	expect_reject(badbool, 2, "plugin_opt_auth");
	expect_reject(badenum, 2, "plugin_opt_envelope");
	expect_reject(badnode, 2, "plugin_opt_node");
	expect_reject(relspool, 2, "plugin_opt_spool_dir");
	/* The full messages of each kind (the type checks live in common/conftab). */
	expect_reject(badbool2, 2, "plugin_opt_spool_fsync: expected true or false, got 'maybe'");
	expect_reject(badenum2, 2, "plugin_opt_other_topics: invalid value 'Allow'");
	expect_reject(unknown2, 2, "plugin_opt_envelopes: unknown option");
	expect_reject(badnode2, 2, "plugin_opt_node: 'a b' must match [A-Za-z0-9_.-]{1,64}");
}

/* After a failure mid-way cfg holds the defaults and the values set so far; mqs_config_free is the
 * only free (ASan's leak check fails this test otherwise, and a double free would abort). */
static void test_failure_ownership(void **state)
{
	struct mqs_config c;
	char err[256];
	struct mosquitto_opt o[] = {OPT("conninfo", "dbname=x"), OPT("spool_dir", "/tmp/a"), OPT("node", "n1"),
	                            OPT("max_payload", "big"), OPT("wake_address", "none")};

	assert_false(mqs_config_parse(&c, o, 5, err, sizeof(err)));
	assert_string_equal(err, "plugin_opt_max_payload: expected an integer from 1 to 268435455, got 'big'");
	assert_string_equal(c.conninfo, "dbname=x");
	assert_string_equal(c.spool_dir, "/tmp/a");
	assert_string_equal(c.node, "n1");
	assert_string_equal(c.wake_address, "127.0.0.1:1883"); /* not reached: the default */
	assert_int_equal(c.max_payload, 262144);
	mqs_config_free(&c);
	assert_null(c.conninfo);
	assert_null(c.node);
	mqs_config_free(&c); /* twice is harmless */

	/* A failure in the checks after the table (node, spool_dir) leaves cfg valid too. */
	struct mosquitto_opt rel[] = {OPT("conninfo", "dbname=x"), OPT("spool_dir", "rel")};
	assert_false(mqs_config_parse(&c, rel, 2, err, sizeof(err)));
	assert_string_equal(err, "plugin_opt_spool_dir: must be an absolute path, got 'rel'");
	assert_string_equal(c.spool_dir, "rel");
	mqs_config_free(&c);
	/* A missing conninfo: everything else is set. */
	assert_false(mqs_config_parse(&c, rel + 1, 1, err, sizeof(err)));
	assert_string_equal(err, "plugin_opt_conninfo: required (a libpq connection string)");
	assert_null(c.conninfo);
	assert_string_equal(c.wake_address, "127.0.0.1:1883");
	mqs_config_free(&c);
}

static void test_describe(void **state)
{
	struct mqs_config c;
	char err[256], desc[1024];
	struct mosquitto_opt o[] = {OPT("conninfo", "password=secret"), OPT("node", "b1"), OPT("spool_dir", "/s"),
	                            OPT("other_topics", "allow"), OPT("auth", "OFF")};

	assert_true(mqs_config_parse(&c, o, 5, err, sizeof(err)));
	assert_string_equal(mqs_config_describe(&c, desc, sizeof(desc)),
	                    "node=b1 spool_dir=/s auth=false envelope=properties other_topics=allow max_payload=262144 "
	                    "receipts_max_members=1000 refusal_log_burst=5 batch_max=1000 spool_max_bytes=268435456 "
	                    "spool_fsync=false "
	                    "reconnect_max_ms=5000 presence_interval_s=30 wake_address=127.0.0.1:1883");
	mqs_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_all_set),
	        cmocka_unit_test(test_rejections), cmocka_unit_test(test_failure_ownership),
	        cmocka_unit_test(test_describe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
