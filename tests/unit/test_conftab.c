/* Unit tests for common/conftab: each setting type, defaults and environment, and the ownership
 * rule (the target stays valid after any failure; mqs_conftab_free is the only free). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "conftab.h"

struct target {
	char *name;
	char *path;
	bool flag;
	long count;
	int mode;
};

static const char *const modes[] = {"slow", "fast", NULL};

#define OFF(f) offsetof(struct target, f)
static const struct mqs_conf_entry table[] = {
        {"name", "opt_name", "MQS_TEST_NAME", MQS_CONF_STRING, OFF(name), "anon", 0, 0, NULL},
        {"path", "opt_path", NULL, MQS_CONF_STRING, OFF(path), NULL, 0, 0, NULL},
        {"flag", "opt_flag", NULL, MQS_CONF_BOOL, OFF(flag), "yes", 0, 0, NULL},
        {"count", "--count", "MQS_TEST_COUNT", MQS_CONF_LONG, OFF(count), "5", -3, 10, NULL},
        {"mode", "opt_mode", NULL, MQS_CONF_ENUM, OFF(mode), "fast", 0, 0, modes},
};
#define N (sizeof(table) / sizeof(table[0]))

static void test_defaults(void **state)
{
	struct target t = {0};
	char err[128];

	unsetenv("MQS_TEST_NAME");
	unsetenv("MQS_TEST_COUNT");
	assert_true(mqs_conftab_defaults(table, N, &t, err, sizeof(err)));
	assert_string_equal(t.name, "anon");
	assert_null(t.path); /* no default */
	assert_true(t.flag);
	assert_int_equal(t.count, 5);
	assert_int_equal(t.mode, 1);
	mqs_conftab_free(table, N, &t);
	assert_null(t.name);

	/* The environment overrides a default; an empty value does not. */
	setenv("MQS_TEST_NAME", "from-env", 1);
	setenv("MQS_TEST_COUNT", "", 1);
	assert_true(mqs_conftab_defaults(table, N, &t, err, sizeof(err)));
	assert_string_equal(t.name, "from-env");
	assert_int_equal(t.count, 5);
	mqs_conftab_free(table, N, &t);

	/* An invalid environment value: false, the entries before it applied, the target valid. */
	setenv("MQS_TEST_COUNT", "11", 1);
	memset(&t, 0, sizeof(t));
	assert_false(mqs_conftab_defaults(table, N, &t, err, sizeof(err)));
	assert_string_equal(err, "--count: expected an integer from -3 to 10, got '11'");
	assert_string_equal(t.name, "from-env");
	assert_true(t.flag);
	assert_int_equal(t.mode, 0); /* after the failure: not applied */
	mqs_conftab_free(table, N, &t);
	unsetenv("MQS_TEST_NAME");
	unsetenv("MQS_TEST_COUNT");
}

static void test_set(void **state)
{
	struct target t = {0};
	char err[128];

	assert_true(mqs_conftab_defaults(table, N, &t, err, sizeof(err)));
	const struct mqs_conf_entry *name = mqs_conftab_find(table, N, "name", 4);
	const struct mqs_conf_entry *flag = mqs_conftab_find(table, N, "flag=on", 4); /* length-delimited */
	const struct mqs_conf_entry *count = mqs_conftab_find(table, N, "count", 5);
	const struct mqs_conf_entry *mode = mqs_conftab_find(table, N, "mode", 4);
	assert_ptr_equal(name, &table[0]);
	assert_ptr_equal(flag, &table[2]);
	assert_null(mqs_conftab_find(table, N, "nam", 3));
	assert_null(mqs_conftab_find(table, N, "names", 5));
	assert_null(mqs_conftab_find(table, N, "", 0));

	/* Strings are copied and replace the old copy (ASan sees a leak otherwise). */
	char buf[] = "bob";
	assert_true(mqs_conftab_set(name, &t, buf, err, sizeof(err)));
	buf[0] = 'x';
	assert_string_equal(t.name, "bob");
	assert_true(mqs_conftab_set(name, &t, "", err, sizeof(err)));
	assert_string_equal(t.name, "");

	static const char *const yes[] = {"true", "TRUE", "1", "yes", "Yes", "on", "ON"};
	static const char *const no[] = {"false", "False", "0", "no", "NO", "off", "Off"};
	for(size_t i = 0; i < 7; i++) {
		t.flag = false;
		assert_true(mqs_conftab_set(flag, &t, yes[i], err, sizeof(err)));
		assert_true(t.flag);
		assert_true(mqs_conftab_set(flag, &t, no[i], err, sizeof(err)));
		assert_false(t.flag);
	}
	assert_false(mqs_conftab_set(flag, &t, "2", err, sizeof(err)));
	assert_string_equal(err, "opt_flag: expected true or false, got '2'");
	assert_false(mqs_conftab_set(flag, &t, "", err, sizeof(err)));
	assert_false(t.flag); /* unchanged */

	assert_true(mqs_conftab_set(count, &t, "-3", err, sizeof(err)));
	assert_int_equal(t.count, -3);
	assert_true(mqs_conftab_set(count, &t, "10", err, sizeof(err)));
	assert_false(mqs_conftab_set(count, &t, "-4", err, sizeof(err)));
	assert_false(mqs_conftab_set(count, &t, "3x", err, sizeof(err)));
	assert_false(mqs_conftab_set(count, &t, "99999999999999999999", err, sizeof(err)));
	assert_string_equal(err, "--count: expected an integer from -3 to 10, got '99999999999999999999'");
	assert_int_equal(t.count, 10); /* unchanged */

	assert_true(mqs_conftab_set(mode, &t, "slow", err, sizeof(err)));
	assert_int_equal(t.mode, 0);
	assert_false(mqs_conftab_set(mode, &t, "FAST", err, sizeof(err)));
	assert_string_equal(err, "opt_mode: invalid value 'FAST'");
	assert_false(mqs_conftab_set(mode, &t, "", err, sizeof(err)));
	assert_int_equal(t.mode, 0);

	mqs_conftab_free(table, N, &t);
	assert_null(t.name);
	assert_null(t.path);
	mqs_conftab_free(table, N, &t); /* a freed target is a zeroed one */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
