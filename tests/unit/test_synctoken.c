/* Unit tests for common/synctoken.c: the sync `next` token round trip, collisions and rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "synctoken.h"

static void test_round_trip(void **state)
{
	struct synctoken_entry e[4] = {
	        {synctoken_key("family"), 42}, {synctoken_key("work"), 0}, {synctoken_key("big"), INT64_MAX}, {7, 128}};
	size_t n = 4;
	struct synctoken_entry *d = NULL;
	size_t nd = 0;

	synctoken_normalize(e, &n);
	assert_int_equal(n, 4);
	char *s = synctoken_encode(e, n);
	assert_non_null(s);
	/* base64url, no padding */
	assert_int_equal(strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), strlen(s));
	assert_true(synctoken_decode(s, &d, &nd));
	assert_int_equal(nd, 4);
	for(size_t i = 0; i < n; i++) {
		int64_t seq = -1;
		assert_true(synctoken_find(d, nd, e[i].key, &seq));
		assert_true(seq == e[i].seq);
	}
	int64_t seq = -1;
	assert_false(synctoken_find(d, nd, synctoken_key("nope"), &seq));
	assert_true(seq == -1);
	free(d);
	free(s);
}

static void test_empty_and_compact(void **state)
{
	struct synctoken_entry *d = (void *)1;
	size_t nd = 99;
	char *s = synctoken_encode(NULL, 0);
	assert_string_equal(s, "AQ");
	assert_true(synctoken_decode(s, &d, &nd));
	assert_int_equal(nd, 0);
	assert_null(d);
	free(s);

	/* 1000 groups at seq < 2^21: 4 + 3 bytes each, so under 10 KB of text. */
	struct synctoken_entry *e = calloc(1000, sizeof(*e));
	size_t n = 1000;
	for(size_t i = 0; i < n; i++) {
		char gid[32];
		snprintf(gid, sizeof(gid), "group-%zu", i);
		e[i].key = synctoken_key(gid);
		e[i].seq = 1000000 + (int64_t)i;
	}
	synctoken_normalize(e, &n);
	s = synctoken_encode(e, n);
	assert_true(strlen(s) < 10000);
	assert_true(synctoken_decode(s, &d, &nd));
	assert_int_equal(nd, n);
	free(d);
	free(s);
	free(e);
}

static void test_collisions_keep_lowest(void **state)
{
	struct synctoken_entry e[3] = {{5, 10}, {5, 3}, {1, 9}};
	size_t n = 3;
	synctoken_normalize(e, &n);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].key, 1);
	assert_int_equal(e[1].key, 5);
	assert_int_equal(e[1].seq, 3);
}

static void test_rejects_garbage(void **state)
{
	struct synctoken_entry *d = NULL;
	size_t nd = 0;
	const char *bad[] = {"",         "A",
	                     "AQ==",     "AQ+/",
	                     "Ag",       "!!!!",
	                     "AQAAAA", /* truncated entry */
	                     "AQAAAAWA", /* varint without end */ "AQAAAAEBAAAAAQE" /* keys not ascending */,
	                     NULL};
	for(const char **b = bad; *b; b++) {
		assert_false(synctoken_decode(*b, &d, &nd));
		assert_null(d);
	}
	/* overlong: 10 varint bytes */
	assert_false(synctoken_decode("AQAAAAH_________________fw", &d, &nd));
	char *huge = malloc(SYNCTOKEN_MAX_LEN + 2);
	memset(huge, 'A', SYNCTOKEN_MAX_LEN + 1);
	huge[SYNCTOKEN_MAX_LEN + 1] = '\0';
	assert_false(synctoken_decode(huge, &d, &nd));
	free(huge);
	assert_false(synctoken_decode(NULL, &d, &nd));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_round_trip),
	        cmocka_unit_test(test_empty_and_compact),
	        cmocka_unit_test(test_collisions_keep_lowest),
	        cmocka_unit_test(test_rejects_garbage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
