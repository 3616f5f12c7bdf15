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
	assert_null(c.conninfo); /* freed on failure */
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
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_all_set),
	        cmocka_unit_test(test_rejections),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
