/* Unit tests for common/syncpage.c: planning a sync page, positions after the fetch, the next token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "syncpage.h"

static struct syncpage_group grp(const char *gid, int64_t joined, int64_t delivered, int64_t last)
{
	struct syncpage_group g = {.joined = joined, .delivered = delivered, .last = last};
	snprintf(g.gid, sizeof(g.gid), "%s", gid);
	return g;
}

/* Decodes the next token of g and returns the position it gives gid (its join point when absent). */
static int64_t token_pos(const char *tok, const struct syncpage_group *g)
{
	struct synctoken_entry *e = NULL;
	size_t n = 0;
	int64_t pos = g->joined;
	assert_true(synctoken_decode(tok, &e, &n));
	synctoken_find(e, n, synctoken_key(g->gid), &pos);
	free(e);
	return pos;
}

static void test_first_sync_starts_at_delivered(void **state)
{
	struct syncpage_group g[2] = {grp("a", 0, 3, 10), grp("b", 5, 5, 5)};
	bool more;

	(void)state;
	assert_int_equal(syncpage_plan(g, 2, false, NULL, 0, 100, &more), 1);
	assert_false(more);
	assert_true(g[0].pos == 3 && g[0].upto == 10);
	assert_true(g[1].pos == 5 && g[1].upto == 5); /* nothing new: no range */
}

static void test_limit_splits_and_has_more(void **state)
{
	struct syncpage_group g[3] = {grp("a", 0, 0, 5), grp("b", 0, 0, 2), grp("c", 0, 0, 1)};
	bool more;

	(void)state;
	assert_int_equal(syncpage_plan(g, 3, false, NULL, 0, 6, &more), 2);
	assert_true(more);
	assert_true(g[0].upto == 5 && g[1].upto == 1 && g[2].upto == 0);
	/* exactly the limit: no more */
	assert_int_equal(syncpage_plan(g, 3, false, NULL, 0, 8, &more), 3);
	assert_false(more);
	/* limit 1 */
	assert_int_equal(syncpage_plan(g, 3, false, NULL, 0, 1, &more), 1);
	assert_true(more);
	assert_true(g[0].upto == 1 && g[1].upto == 0);
}

static void test_token_positions_new_and_left_groups(void **state)
{
	/* The token knows "a" at 4 and "left" (a group the user is no longer in) at 9. */
	struct synctoken_entry tok[2] = {{synctoken_key("a"), 4}, {synctoken_key("left"), 9}};
	size_t ntok = 2;
	struct syncpage_group g[2] = {grp("a", 0, 0, 6), grp("new", 7, 7, 8)};
	bool more;

	(void)state;
	synctoken_normalize(tok, &ntok);
	assert_int_equal(syncpage_plan(g, 2, true, tok, ntok, 100, &more), 2);
	assert_true(g[0].pos == 4 && g[0].upto == 6);
	assert_true(g[1].pos == 7 && g[1].upto == 8); /* not in the token: from its join point */
	/* After the fetch, the next token drops "left" and carries both groups' new positions. */
	size_t cursor = 0;
	assert_true(syncpage_returned(g, 2, &cursor, "a", 1, 6));
	assert_true(syncpage_returned(g, 2, &cursor, "new", 3, 8));
	assert_false(syncpage_returned(g, 2, &cursor, "gone", 4, 1));
	char *next = syncpage_next_token(g, 2);
	assert_non_null(next);
	struct synctoken_entry *e = NULL;
	size_t n = 0;
	int64_t seq;
	assert_true(synctoken_decode(next, &e, &n));
	assert_int_equal(n, 2);
	assert_false(synctoken_find(e, n, synctoken_key("left"), &seq));
	assert_true(token_pos(next, &g[0]) == 6 && token_pos(next, &g[1]) == 8);
	free(e);
	free(next);
}

static void test_positions_are_clamped(void **state)
{
	/* A token from before the user joined, or past a group's end (re-created group). */
	struct synctoken_entry tok[2] = {{synctoken_key("a"), 1}, {synctoken_key("b"), 50}};
	size_t ntok = 2;
	struct syncpage_group g[2] = {grp("a", 3, 3, 5), grp("b", 0, 0, 10)};
	bool more;

	(void)state;
	synctoken_normalize(tok, &ntok);
	assert_int_equal(syncpage_plan(g, 2, true, tok, ntok, 100, &more), 1);
	assert_true(g[0].pos == 3 && g[0].upto == 5);
	assert_true(g[1].pos == 10 && g[1].upto == 10);
}

static void test_first_token_of_a_new_device(void **state)
{
	struct syncpage_group g[1] = {grp("a", 2, 2, 2)};
	bool more;

	(void)state;
	assert_int_equal(syncpage_plan(g, 1, true, NULL, 0, 100, &more), 0);
	char *next = syncpage_next_token(g, 1);
	assert_string_equal(next, "AQ"); /* nothing past a join point */
	free(next);
}

static void test_collision_never_skips(void **state)
{
	/* Two real ids with the same 32-bit key (tests/integration/test_syncd_token_collision.py). */
	struct syncpage_group g[2] = {grp("g115728", 0, 0, 10), grp("g2169004", 0, 0, 3)};
	bool more;

	(void)state;
	assert_int_equal(synctoken_key("g115728"), synctoken_key("g2169004"));
	/* A page of 10 reads all of the first group and none of the second. */
	assert_int_equal(syncpage_plan(g, 2, false, NULL, 0, 10, &more), 1);
	assert_true(more);
	size_t cursor = 0;
	assert_true(syncpage_returned(g, 2, &cursor, "g115728", 7, 10));
	char *next = syncpage_next_token(g, 2);
	assert_non_null(next);
	/* The shared entry holds the lower position (0): the second group is not skipped. */
	assert_true(token_pos(next, &g[1]) == 0);
	/* The next page from that token re-reads the first group (a re-delivery, never a miss). */
	struct synctoken_entry *e = NULL;
	size_t n = 0;
	assert_true(synctoken_decode(next, &e, &n));
	assert_int_equal(n, 1);
	assert_int_equal(syncpage_plan(g, 2, true, e, n, 100, &more), 2);
	assert_true(g[0].pos == 0 && g[1].pos == 0 && g[1].upto == 3);
	free(e);
	free(next);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_first_sync_starts_at_delivered),
	        cmocka_unit_test(test_limit_splits_and_has_more),
	        cmocka_unit_test(test_token_positions_new_and_left_groups),
	        cmocka_unit_test(test_positions_are_clamped),
	        cmocka_unit_test(test_first_token_of_a_new_device),
	        cmocka_unit_test(test_collision_never_skips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
