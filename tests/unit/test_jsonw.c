/* Unit tests for common/jsonw.c: escaping, UTF-8 validation and base64 of the fast JSON writer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "jsonw.h"

static void test_escaping_round_trips(void **state)
{
	const char in[] = "q\"b\\s/\n\r\t\b\f\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
	struct jsonw w = {0};
	size_t n = sizeof(in) - 1;

	assert_true(jsonw_utf8_valid(in, n));
	jsonw_lit(&w, "[");
	jsonw_str(&w, in, n);
	jsonw_lit(&w, ",");
	jsonw_str(&w, "a\0b", 3);
	jsonw_lit(&w, ",");
	jsonw_int(&w, INT64_MIN);
	jsonw_lit(&w, ",");
	jsonw_int(&w, 0);
	jsonw_lit(&w, ",");
	jsonw_int(&w, INT64_MAX);
	jsonw_lit(&w, "]");
	assert_false(w.oom);
	/* jansson must read back exactly what went in. */
	json_error_t err;
	json_t *v = json_loads(w.s, JSON_ALLOW_NUL, &err);
	assert_non_null(v);
	assert_int_equal(json_string_length(json_array_get(v, 0)), n);
	assert_memory_equal(json_string_value(json_array_get(v, 0)), in, n);
	assert_int_equal(json_string_length(json_array_get(v, 1)), 3);
	assert_true(json_integer_value(json_array_get(v, 2)) == INT64_MIN);
	assert_true(json_integer_value(json_array_get(v, 3)) == 0);
	assert_true(json_integer_value(json_array_get(v, 4)) == INT64_MAX);
	json_decref(v);
	jsonw_free(&w);
}

static void test_utf8_validation(void **state)
{
	const char *bad[] = {"\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
	                     "\xc3", "\xe2\x82", "\x80",         "a\xc3(",       NULL};
	for(const char **b = bad; *b; b++) assert_false(jsonw_utf8_valid(*b, strlen(*b)));
	assert_false(jsonw_utf8_valid("abcdefghijklmnopq\xff", 18));
	assert_false(jsonw_utf8_valid("abcdefgh12345678\xed\xa0\x80zzzzzzzzzz", 29));
	assert_true(jsonw_utf8_valid("abcdefgh12345678\xc3\xa9zzzzzzzzzzzzzzzz\xe2\x82\xac", 37));
	assert_true(jsonw_utf8_valid("", 0));
	assert_true(jsonw_utf8_valid("\xf4\x8f\xbf\xbf", 4));
	assert_true(jsonw_utf8_valid("\0", 1));
}

static void test_base64(void **state)
{
	struct jsonw w = {0};
	jsonw_base64(&w, (const unsigned char *)"\xff\x00\x01", 3);
	jsonw_base64(&w, (const unsigned char *)"ab", 2);
	jsonw_base64(&w, (const unsigned char *)"", 0);
	assert_string_equal(w.s, "\"/wAB\"\"YWI=\"\"\"");
	jsonw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_escaping_round_trips),
	        cmocka_unit_test(test_utf8_validation),
	        cmocka_unit_test(test_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
