/* Unit tests for common/pgarr: PostgreSQL array literals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pgarr.h"

static void add(struct mqs_pgarr *a, const char *s)
{
	mqs_pgarr_add_str(a, s, strlen(s));
}

static void test_empty(void **state)
{
	struct mqs_pgarr a = {0};

	assert_string_equal(mqs_pgarr_text(&a), "{}");
	mqs_pgarr_free(&a);
	mqs_pgarr_free(&a); /* twice: a was zeroed */
}

static void test_elements(void **state)
{
	struct mqs_pgarr a = {0};

	add(&a, "alice");
	assert_string_equal(mqs_pgarr_text(&a), "{\"alice\"}");
	add(&a, "null");
	add(&a, "NULL");
	add(&a, "");
	assert_string_equal(mqs_pgarr_text(&a), "{\"alice\",\"null\",\"NULL\",\"\"}");
	assert_int_equal(a.n, 4);
	mqs_pgarr_reset(&a);
	assert_string_equal(mqs_pgarr_text(&a), "{}");
	assert_int_equal(a.n, 0);
	add(&a, "a\"b");
	add(&a, "c\\d");
	add(&a, "{x,y}");
	add(&a, "\\\"");
	assert_string_equal(mqs_pgarr_text(&a), "{\"a\\\"b\",\"c\\\\d\",\"{x,y}\",\"\\\\\\\"\"}");
	mqs_pgarr_add_str(&a, "abcdef", 3); /* length-delimited */
	assert_string_equal(mqs_pgarr_text(&a), "{\"a\\\"b\",\"c\\\\d\",\"{x,y}\",\"\\\\\\\"\",\"abc\"}");
	mqs_pgarr_free(&a);
}

static void test_ints(void **state)
{
	struct mqs_pgarr a = {0};

	mqs_pgarr_add_int(&a, 0);
	mqs_pgarr_add_int(&a, -1);
	mqs_pgarr_add_int(&a, INT64_MAX);
	mqs_pgarr_add_int(&a, INT64_MIN);
	assert_string_equal(mqs_pgarr_text(&a), "{0,-1,9223372036854775807,-9223372036854775808}");
	mqs_pgarr_free(&a);
}

static void test_growth(void **state)
{
	struct mqs_pgarr a = {0};
	char big[1000];

	memset(big, '"', sizeof(big));
	for(int i = 0; i < 20; i++) mqs_pgarr_add_str(&a, big, sizeof(big));
	const char *t = mqs_pgarr_text(&a);
	assert_non_null(t);
	assert_int_equal(strlen(t), 2 + 20 * (2 * sizeof(big) + 2) + 19);
	assert_int_equal(a.len + 1, strlen(t));
	mqs_pgarr_free(&a);
}

static void test_nul_byte(void **state)
{
	struct mqs_pgarr a = {0};

	add(&a, "ok");
	mqs_pgarr_add_str(&a, "a\0b", 3); /* PostgreSQL text cannot hold NUL */
	assert_null(mqs_pgarr_text(&a));
	add(&a, "more");
	assert_null(mqs_pgarr_text(&a));
	mqs_pgarr_reset(&a);
	add(&a, "x");
	assert_string_equal(mqs_pgarr_text(&a), "{\"x\"}");
	mqs_pgarr_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_empty),  cmocka_unit_test(test_elements), cmocka_unit_test(test_ints),
	        cmocka_unit_test(test_growth), cmocka_unit_test(test_nul_byte),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
