/* Unit tests for common/: identifier validation, tokens, integer parsing, buffer growth, deadlines and the online rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "pg.h"
#include "token.h"
#include "util.h"

static void test_ids(void **state)
{
	char longid[66];

	assert_true(mqs_id_valid("alice"));
	assert_true(mqs_id_valid("A-b_9"));
	assert_false(mqs_id_valid(""));
	assert_false(mqs_id_valid(NULL));
	assert_false(mqs_id_valid("a+b"));
	assert_false(mqs_id_valid("a#"));
	assert_false(mqs_id_valid("a/b"));
	assert_false(mqs_id_valid("a b"));
	assert_false(mqs_id_valid("caf\xc3\xa9"));
	memset(longid, 'x', 64);
	longid[64] = '\0';
	assert_true(mqs_id_valid(longid));
	longid[64] = 'x';
	longid[65] = '\0';
	assert_false(mqs_id_valid(longid));
	assert_true(mqs_id_valid_n("abc/def", 3));
	assert_false(mqs_id_valid_n("abc", 0));
}

static void test_tokens(void **state)
{
	char a[MQS_TOKEN_LEN + 1], b[MQS_TOKEN_LEN + 1];
	unsigned char ha[MQS_TOKEN_HASH_LEN], hb[MQS_TOKEN_HASH_LEN], ha2[MQS_TOKEN_HASH_LEN];

	assert_true(mqs_token_new(a));
	assert_true(mqs_token_new(b));
	assert_int_equal(strlen(a), MQS_TOKEN_LEN);
	assert_string_not_equal(a, b);
	for(size_t i = 0; i < MQS_TOKEN_LEN; i++) assert_true(mqs_id_valid_n(&a[i], 1)); /* URL-safe alphabet */
	assert_true(mqs_token_hash(a, strlen(a), ha));
	assert_true(mqs_token_hash(a, strlen(a), ha2));
	assert_true(mqs_token_hash(b, strlen(b), hb));
	assert_true(mqs_token_hash_eq(ha, ha2));
	assert_false(mqs_token_hash_eq(ha, hb));
	/* Known vector: SHA-256("abc"). */
	static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
	                                      0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
	                                      0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
	assert_true(mqs_token_hash("abc", 3, ha));
	assert_memory_equal(ha, abc, 32);
}

static void test_parse_int(void **state)
{
	int64_t v = 7;

	assert_true(mqs_parse_int("42", 0, 100, &v));
	assert_int_equal(v, 42);
	assert_true(mqs_parse_int("-5", -10, 10, &v));
	assert_int_equal(v, -5);
	v = 7;
	assert_false(mqs_parse_int("", 0, 100, &v));
	assert_false(mqs_parse_int("12abc", 0, 100, &v));
	assert_false(mqs_parse_int("101", 0, 100, &v));
	assert_false(mqs_parse_int("99999999999999999999", 0, 100, &v));
	assert_false(mqs_parse_int(NULL, 0, 100, &v));
	assert_false(mqs_parse_int(" 5", 0, 100, &v)); /* strict: no white space, no '+' */
	assert_false(mqs_parse_int("+5", 0, 100, &v));
	assert_false(mqs_parse_int("-", -10, 10, &v));
	assert_false(mqs_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v));
	assert_int_equal(v, 7); /* unchanged on failure */
	assert_true(mqs_parse_int("9223372036854775807", INT64_MIN, INT64_MAX, &v));
	assert_true(v == INT64_MAX);
	assert_true(mqs_parse_int("-9223372036854775808", INT64_MIN, INT64_MAX, &v));
	assert_true(v == INT64_MIN);
	assert_true(mqs_parse_int("0000000000000000000000042", 0, 100, &v)); /* leading zeros are no overflow */
	assert_int_equal(v, 42);
}

static void test_deadline(void **state)
{
	struct timespec now, d;

	clock_gettime(CLOCK_REALTIME, &now);
	d = mqs_deadline_ms(1500);
	long long diff_ms = (long long)(d.tv_sec - now.tv_sec) * 1000 + (d.tv_nsec - now.tv_nsec) / 1000000;
	assert_true(diff_ms >= 1499 && diff_ms <= 1600);
	assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
}

static void test_grow(void **state)
{
	char *b = NULL;
	size_t cap = 0;

	assert_true(mqs_grow(&b, &cap, 0, 16));
	assert_null(b); /* nothing needed yet */
	assert_true(mqs_grow(&b, &cap, 1, 16));
	assert_int_equal(cap, 16);
	memset(b, 'x', 16);
	assert_true(mqs_grow(&b, &cap, 16, 16));
	assert_int_equal(cap, 16);
	assert_true(mqs_grow(&b, &cap, 17, 16));
	assert_int_equal(cap, 32);
	assert_int_equal(b[15], 'x'); /* contents kept */
	assert_true(mqs_grow(&b, &cap, 100, 16));
	assert_int_equal(cap, 128);
	char *before = b;
	assert_false(mqs_grow(&b, &cap, SIZE_MAX, 16)); /* overflow: unchanged */
	assert_ptr_equal(b, before);
	assert_int_equal(cap, 128);
	free(b);
}

static void test_online_rule(void **state)
{
	assert_int_equal(MQS_ONLINE_WINDOW_S, 90);
	assert_string_equal(MQS_SQL_ONLINE("p.last_seen"), "(p.last_seen > now() - interval '90 seconds')");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_ids),      cmocka_unit_test(test_tokens), cmocka_unit_test(test_parse_int),
	        cmocka_unit_test(test_deadline), cmocka_unit_test(test_grow),   cmocka_unit_test(test_online_rule),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
