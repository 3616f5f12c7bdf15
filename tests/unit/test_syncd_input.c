/* Unit tests for syncd/input.c: integers, bearer headers, content types and JSON field checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "input.h"

static void test_int(void **state)
{
	int64_t v = -7;
	assert_true(mqs_parse_int("0", 0, 10, &v));
	assert_true(v == 0);
	assert_true(mqs_parse_int("1000", 1, 1000, &v));
	assert_true(v == 1000);
	assert_true(mqs_parse_int("-5", -10, 10, &v));
	assert_true(v == -5);
	assert_true(mqs_parse_int("9223372036854775807", 0, INT64_MAX, &v));
	assert_true(v == INT64_MAX);
	const char *bad[] = {
	        "",     "-",  "+1",  " 1", "1 ", "1.0", "1e3", "0x10", "99999999999999999999", "9223372036854775808",
	        "1001", "-1", "abc", NULL};
	for(const char **b = bad; *b; b++) assert_false(mqs_parse_int(*b, 0, 1000, &v));
	assert_false(mqs_parse_int(NULL, 0, 1, &v));
}

static void test_unescape(void **state)
{
	char a[] = "/groups/..%2f..%2F%41";
	assert_int_equal(input_unescape(a), 15);
	assert_string_equal(a, "/groups/../../A");
	char b[] = "fam%00/members%zz%4";
	input_unescape(b);
	assert_string_equal(b, "fam%00/members%zz%4");
	char c[] = "%e2%82%ac";
	assert_int_equal(input_unescape(c), 3);
	assert_string_equal(c, "\xe2\x82\xac");
}

static void test_bearer(void **state)
{
	size_t len = 0;
	const char *t = input_bearer("Bearer abc.DEF-123", &len);
	assert_non_null(t);
	assert_int_equal(len, 11);
	assert_memory_equal(t, "abc.DEF-123", 11);
	t = input_bearer("bearer   xyz", &len);
	assert_non_null(t);
	assert_int_equal(len, 3);
	assert_null(input_bearer(NULL, &len));
	assert_null(input_bearer("Basic dXNlcjpwYXNz", &len));
	assert_null(input_bearer("Bearer", &len));
	assert_null(input_bearer("Bearer ", &len));
	assert_null(input_bearer("Bearerabc", &len));
	assert_null(input_bearer("Bearer a b", &len));
}

static void test_content_type(void **state)
{
	assert_true(input_is_json_type("application/json"));
	assert_true(input_is_json_type("Application/JSON; charset=utf-8"));
	assert_false(input_is_json_type(NULL));
	assert_false(input_is_json_type("text/plain"));
	assert_false(input_is_json_type("application/jsonp"));
	assert_false(input_is_json_type("application/x-www-form-urlencoded"));
}

static void test_json_body(void **state)
{
	char err[256];
	json_t *o = input_json_object("{\"a\":1}", 7, err, sizeof(err));
	assert_non_null(o);
	json_decref(o);
	const char *bad[] = {"",
	                     "{",
	                     "[1]",
	                     "\"x\"",
	                     "{\"a\":1}{",
	                     "{\"a\":1,\"a\":2}",
	                     "{\"a\":99999999999999999999}",
	                     "{\"a\":\"\xff\"}",
	                     NULL};
	for(const char **b = bad; *b; b++) {
		assert_null(input_json_object(*b, strlen(*b), err, sizeof(err)));
		assert_true(strlen(err) > 0);
	}
}

static void test_fields(void **state)
{
	char err[256];
	static const char *const allowed[] = {"seq", "group", "admin", NULL};
	json_t *o = json_pack("{s:i,s:s,s:b}", "seq", 5, "group", "fam", "admin", 1);
	int64_t v;
	bool present, b;
	const char *s;

	assert_true(input_only_keys(o, allowed, err, sizeof(err)));
	assert_true(input_field_int(o, "seq", "seq", 0, 10, true, &v, &present, err, sizeof(err)));
	assert_true(present && v == 5);
	assert_false(input_field_int(o, "seq", "seq", 6, 10, true, &v, &present, err, sizeof(err)));
	assert_non_null(strstr(err, "seq"));
	assert_true(input_field_int(o, "missing", "missing", 0, 10, false, &v, &present, err, sizeof(err)));
	assert_false(present);
	assert_false(input_field_int(o, "missing", "missing", 0, 10, true, &v, &present, err, sizeof(err)));
	assert_non_null(strstr(err, "missing: required"));
	assert_false(input_field_int(o, "group", "group", 0, 10, true, &v, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "group: expected an integer"));
	assert_true(input_field_id(o, "group", "group", true, &s, NULL, err, sizeof(err)));
	assert_string_equal(s, "fam");
	assert_true(input_field_bool(o, "admin", "admin", true, &b, NULL, err, sizeof(err)));
	assert_true(b);
	assert_false(input_field_bool(o, "seq", "seq", true, &b, NULL, err, sizeof(err)));
	json_object_set_new(o, "bogus", json_true());
	assert_false(input_only_keys(o, allowed, err, sizeof(err)));
	assert_string_equal(err, "unknown field 'bogus'");
	json_object_set_new(o, "group", json_string("../etc"));
	assert_false(input_field_id(o, "group", "group", true, &s, NULL, err, sizeof(err)));
	json_object_set_new(o, "group", json_real(1.5));
	assert_false(input_field_string(o, "group", "group", 10, true, &s, NULL, err, sizeof(err)));
	json_object_set_new(o, "group", json_stringn("a\0b", 3));
	assert_false(input_field_string(o, "group", "group", 10, true, &s, NULL, err, sizeof(err)));
	json_decref(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_int),          cmocka_unit_test(test_unescape),  cmocka_unit_test(test_bearer),
	        cmocka_unit_test(test_content_type), cmocka_unit_test(test_json_body), cmocka_unit_test(test_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
