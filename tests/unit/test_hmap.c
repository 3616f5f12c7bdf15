/* Unit tests for common/hmap: put/get/replace/delete/take, binary keys, growth and iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hmap.h"

static int freed;

static void count_free(void *v)
{
	freed++;
	free(v);
}

static int *boxed(int v)
{
	int *p = malloc(sizeof(*p));
	assert_non_null(p);
	*p = v;
	return p;
}

static void test_basic(void **state)
{
	struct hmap *m = hmap_new(count_free);

	freed = 0;
	assert_non_null(m);
	assert_int_equal(hmap_count(m), 0);
	assert_null(hmap_gets(m, "a"));
	assert_true(hmap_puts(m, "a", boxed(1)));
	assert_true(hmap_puts(m, "b", boxed(2)));
	assert_int_equal(*(int *)hmap_gets(m, "a"), 1);
	assert_int_equal(hmap_count(m), 2);
	assert_true(hmap_puts(m, "a", boxed(3))); /* replace frees the old value */
	assert_int_equal(freed, 1);
	assert_int_equal(*(int *)hmap_gets(m, "a"), 3);
	assert_int_equal(hmap_count(m), 2);
	assert_true(hmap_dels(m, "a"));
	assert_false(hmap_dels(m, "a"));
	assert_int_equal(freed, 2);
	int *b = hmap_take(m, "b", 1);
	assert_int_equal(*b, 2);
	assert_int_equal(freed, 2); /* taken, not freed */
	free(b);
	assert_null(hmap_take(m, "b", 1));
	assert_int_equal(hmap_count(m), 0);
	hmap_free(m);
	hmap_free(NULL);
}

static void test_binary_keys(void **state)
{
	struct hmap *m = hmap_new(NULL);
	static int x, y, z;

	assert_non_null(m);
	assert_true(hmap_put(m, "a\0b", 3, &x));
	assert_true(hmap_put(m, "a\0c", 3, &y));
	assert_true(hmap_put(m, "a", 1, &z));
	assert_true(hmap_put(m, "", 0, &x));
	assert_ptr_equal(hmap_get(m, "a\0b", 3), &x);
	assert_ptr_equal(hmap_get(m, "a\0c", 3), &y);
	assert_ptr_equal(hmap_get(m, "a", 1), &z);
	assert_ptr_equal(hmap_get(m, "", 0), &x);
	assert_null(hmap_get(m, "a\0", 2));
	assert_int_equal(hmap_count(m), 4);
	/* The key is copied. */
	char k[] = "key";
	assert_true(hmap_puts(m, k, &y));
	k[0] = 'X';
	assert_ptr_equal(hmap_gets(m, "key"), &y);
	assert_null(hmap_gets(m, "Xey"));
	hmap_free(m); /* no free_value: the static values are not freed */
}

static void sum(const void *key, size_t keylen, void *value, void *arg)
{
	char buf[16];
	assert_true(keylen < sizeof(buf));
	memcpy(buf, key, keylen);
	buf[keylen] = '\0';
	assert_int_equal(atoi(buf), *(int *)value);
	*(long *)arg += *(int *)value;
}

static void test_many(void **state)
{
	struct hmap *m = hmap_new(count_free);
	char key[16];
	long total = 0, want = 0;

	freed = 0;
	for(int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "%d", i);
		assert_true(hmap_puts(m, key, boxed(i)));
		want += i;
	}
	assert_int_equal(hmap_count(m), 5000);
	for(int i = 0; i < 5000; i += 7) {
		snprintf(key, sizeof(key), "%d", i);
		assert_int_equal(*(int *)hmap_gets(m, key), i);
	}
	hmap_each(m, sum, &total);
	assert_int_equal(total, want);
	for(int i = 0; i < 5000; i += 2) {
		snprintf(key, sizeof(key), "%d", i);
		assert_true(hmap_dels(m, key));
	}
	assert_int_equal(hmap_count(m), 2500);
	assert_null(hmap_gets(m, "0"));
	assert_int_equal(*(int *)hmap_gets(m, "4999"), 4999);
	hmap_free(m);
	assert_int_equal(freed, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_basic),
	        cmocka_unit_test(test_binary_keys),
	        cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
