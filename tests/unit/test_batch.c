/* Unit tests for plugin/batch.c: batch splitting by count and bytes, in-batch (sender, cid)
 * duplicates, the lock and spool_progress parameters, the binary columns, and reading the
 * outcome back into statuses. (The array literals themselves: test_pgarr.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* A message of group g from sender s with cid (may be ""), origin epoch e, counter c. */
static struct mqs_msg *msg(const char *g, const char *s, const char *cid, uint64_t e, uint64_t c, uint32_t len)
{
	struct mqs_msg *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->hdr.kind = ITEM_MSG;
	snprintf(m->group, sizeof(m->group), "%s", g);
	snprintf(m->sender, sizeof(m->sender), "%s", s);
	snprintf(m->cid, sizeof(m->cid), "%s", cid);
	mqs_be64_put(m->origin, e);
	mqs_be64_put(m->origin + 8, c);
	m->qos = 1;
	m->payload_len = len;
	m->payload = calloc(1, len ? len : 1);
	assert_non_null(m->payload);
	m->status = MSG_STORED; /* build must reset it */
	return m;
}

static struct mqs_item *chain(struct mqs_msg **ms, size_t n)
{
	for(size_t i = 0; i < n; i++) ms[i]->hdr.next = i + 1 < n ? &ms[i + 1]->hdr : NULL;
	return &ms[0]->hdr;
}

static void free_all(struct mqs_msg **ms, size_t n)
{
	for(size_t i = 0; i < n; i++) mqs_item_free(&ms[i]->hdr);
}

static void test_split(void **unused)
{
	struct mqs_msg *ms[5], *out[5];
	(void)unused;
	for(int i = 0; i < 5; i++) ms[i] = msg("g", "u", "", 1, (uint64_t)i + 1, 100);
	struct mqs_item *head = chain(ms, 5);

	assert_int_equal(mqs_batch_split(head, 5, 1000, out), 5);
	assert_ptr_equal(out[4], ms[4]);
	assert_int_equal(mqs_batch_split(head, 3, 1000, out), 3); /* batch_max */
	assert_int_equal(mqs_batch_split(head, 5, 250, out), 2);  /* bytes: 200 fit, 300 do not */
	assert_int_equal(mqs_batch_split(head, 5, 50, out), 1);   /* always at least one */
	assert_int_equal(mqs_batch_split(NULL, 5, 50, out), 0);
	free_all(ms, 5);
}

static void test_build_and_settle(void **unused)
{
	struct mqs_msg *ms[6], *cand[6];
	struct mqs_batch b;
	(void)unused;
	/* epoch 7: counters 1-3; then epoch 9: 1-3. ms[2] repeats ms[0]'s (sender, cid); the same
	 * cid from another sender is not a repeat. Group "nu\"ll" needs quoting. */
	ms[0] = msg("g1", "alice", "c1", 7, 1, 3);
	ms[1] = msg("g2", "alice", "", 7, 2, 0);
	ms[2] = msg("g1", "alice", "c1", 7, 3, 3);
	ms[3] = msg("g1", "bob", "c1", 9, 1, 1);
	ms[4] = msg("nu\"ll", "bob", "", 9, 2, 1);
	ms[5] = msg("g3", "bob", "", 9, 3, 1);

	assert_true(mqs_batch_build(&b, ms, 6, cand));
	assert_int_equal(b.ncand, 5);
	assert_int_equal(ms[2]->status, MSG_DUPLICATE);
	assert_int_equal(ms[0]->status, MSG_PENDING);
	assert_ptr_equal(cand[2], ms[3]);
	assert_string_equal(mqs_pgarr_text(&b.groups), "{\"g1\",\"g2\",\"nu\\\"ll\",\"g3\"}");
	assert_string_equal(mqs_pgarr_text(&b.upto_epoch), "{7,9}");
	assert_string_equal(mqs_pgarr_text(&b.upto_ctr), "{3,3}");
	/* binary columns: header (ndim 1, has_null, oid, count, lower bound 1) */
	const uint8_t *cid = (const uint8_t *)b.col[4].b;
	assert_int_equal(mqs_be32_get(cid), 1);
	assert_int_equal(mqs_be32_get(cid + 4), 1); /* ms[1] has no cid: a NULL element */
	assert_int_equal(mqs_be32_get(cid + 8), 25);
	assert_int_equal(mqs_be32_get(cid + 12), 5);
	assert_int_equal(mqs_be32_get(cid + 16), 1);
	assert_int_equal(mqs_be32_get(cid + 20), 2); /* "c1" */
	assert_memory_equal(cid + 24, "c1", 2);
	assert_int_equal(mqs_be32_get(cid + 26), 0xffffffffu);
	const uint8_t *qos = (const uint8_t *)b.col[3].b;
	assert_int_equal(mqs_be32_get(qos + 4), 0);
	assert_int_equal(mqs_be32_get(qos + 8), 21);
	assert_int_equal(mqs_be32_get(qos + 20), 2);
	assert_int_equal(qos[24] << 8 | qos[25], 1);
	const uint8_t *ctr = (const uint8_t *)b.col[6].b;
	assert_int_equal(mqs_be32_get(ctr + 20), 8);
	assert_int_equal(ctr[31], 1);

	/* the outcome: ords 1 and 3 stored; g3 was deleted (not locked); the rest duplicates */
	mqs_batch_stored(&b, 1, 100, 5, "2026-01-01T00:00:00.000Z");
	mqs_batch_stored(&b, 3, 101, 9, "2026-01-01T00:00:00.001Z");
	mqs_batch_stored(&b, 0, 1, 1, "x");  /* out of range: ignored */
	mqs_batch_stored(&b, 99, 1, 1, "x"); /* out of range: ignored */
	struct hmap *locked = hmap_new(NULL);
	assert_non_null(locked);
	assert_true(hmap_puts(locked, "g1", ms[0]));
	assert_true(hmap_puts(locked, "g2", ms[0]));
	assert_true(hmap_puts(locked, "nu\"ll", ms[0]));
	mqs_batch_settle(&b, locked);
	hmap_free(locked);
	assert_int_equal(ms[0]->status, MSG_STORED);
	assert_int_equal(ms[0]->id, 100);
	assert_int_equal(ms[0]->seq, 5);
	assert_string_equal(ms[0]->ts, "2026-01-01T00:00:00.000Z");
	assert_int_equal(ms[1]->status, MSG_DUPLICATE);
	assert_int_equal(ms[2]->status, MSG_DUPLICATE);
	assert_int_equal(ms[3]->status, MSG_STORED);
	assert_int_equal(ms[3]->seq, 9);
	assert_int_equal(ms[4]->status, MSG_DUPLICATE);
	assert_int_equal(ms[5]->status, MSG_NO_GROUP);
	mqs_batch_free(&b);

	/* without the lock list (out of memory) nothing is reported as deleted */
	assert_true(mqs_batch_build(&b, ms, 6, cand));
	mqs_batch_settle(&b, NULL);
	assert_int_equal(ms[5]->status, MSG_DUPLICATE);
	mqs_batch_free(&b);
	mqs_batch_free(NULL);
	free_all(ms, 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_split),
	        cmocka_unit_test(test_build_and_settle),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
