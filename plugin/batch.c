/* batch: choosing the writer's next batch of messages and building its statement parameters, and
 * reading the outcome back into the messages' statuses. Pure (no libpq calls, no threads): the
 * writer thread calls it; tests/unit/test_batch.c exercises it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* ---- binary array parameters ------------------------------------------------------------------- */

#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_TEXT  25

static void barr_init(struct mqs_barr *a, uint32_t oid)
{
	memset(a, 0, sizeof(*a));
	a->oid = oid;
	a->ok = true;
	a->len = 20; /* header, written by barr_finish */
}

/* Appends one element (data NULL: a NULL element). */
static void barr_put(struct mqs_barr *a, const void *data, size_t n)
{
	if(!a->ok) return;
	if(!mqs_grow(&a->b, &a->cap, a->len + 4 + n, 4096)) {
		a->ok = false;
		return;
	}
	mqs_be32_put(a->b + a->len, data ? (uint32_t)n : 0xffffffffu);
	a->len += 4;
	if(data) memcpy(a->b + a->len, data, n);
	if(data)
		a->len += n;
	else
		a->has_null = true;
	a->count++;
}

static void barr_put_int8(struct mqs_barr *a, const uint8_t be[8])
{
	barr_put(a, be, 8);
}

static void barr_put_int2(struct mqs_barr *a, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	barr_put(a, b, 2);
}

/* Writes the header. False if an allocation failed. */
static bool barr_finish(struct mqs_barr *a)
{
	if(!a->ok || (a->b == NULL && (a->b = malloc(20)) == NULL)) return false;
	mqs_be32_put(a->b, 1);
	mqs_be32_put(a->b + 4, a->has_null ? 1 : 0);
	mqs_be32_put(a->b + 8, a->oid);
	mqs_be32_put(a->b + 12, (uint32_t)a->count);
	mqs_be32_put(a->b + 16, 1);
	return true;
}

/* ---- the batch --------------------------------------------------------------------------------- */

size_t mqs_batch_split(struct mqs_item *head, size_t max, size_t max_bytes, struct mqs_msg **out)
{
	size_t n = 0, bytes = 0;

	for(struct mqs_item *it = head; it != NULL && n < max; it = it->next) {
		bytes += ((struct mqs_msg *)it)->payload_len;
		if(n > 0 && bytes > max_bytes) break;
		out[n++] = (struct mqs_msg *)it;
	}
	return n;
}

#define CID_KEY_MAX (MQS_ID_MAX + 1 + 64)

/* Writes the map key "sender\0cid" into key (CID_KEY_MAX bytes); returns its length, 0 if either
 * part is too long to be one of ours. */
static size_t cid_key(char *key, const char *sender, const char *cid)
{
	size_t sl = strlen(sender), cl = strlen(cid);
	if(sl > MQS_ID_MAX || cl > 64) return 0;
	memcpy(key, sender, sl + 1);
	memcpy(key + sl + 1, cid, cl);
	return sl + 1 + cl;
}

/* Adds m as the next candidate (ord = ncand after it): its ingest columns, and its group to the
 * lock list unless there already. False on out of memory. */
static bool add_candidate(struct mqs_batch *b, struct hmap *groups, struct mqs_msg *m)
{
	if(hmap_gets(groups, m->group) == NULL) {
		if(!hmap_puts(groups, m->group, m)) return false;
		mqs_pgarr_add_str(&b->groups, m->group, strlen(m->group));
	}
	b->cand[b->ncand++] = m;
	barr_put(&b->col[0], m->group, strlen(m->group));
	barr_put(&b->col[1], m->sender, strlen(m->sender));
	barr_put(&b->col[2], m->payload, m->payload_len);
	barr_put_int2(&b->col[3], m->qos);
	barr_put(&b->col[4], m->cid[0] ? m->cid : NULL, strlen(m->cid));
	barr_put_int8(&b->col[5], m->origin); /* the origin's halves are big-endian int8 already */
	barr_put_int8(&b->col[6], m->origin + 8);
	return true;
}

/* Builds the candidates and parameters; see mqs_batch_build. */
static bool build(struct mqs_batch *b, struct mqs_msg **ms, size_t n, struct hmap *seen, struct hmap *groups)
{
	for(size_t i = 0; i < n; i++) {
		struct mqs_msg *m = ms[i];
		m->status = MSG_PENDING;
		/* spool_progress: the highest counter of each epoch run (counters rise within a run). */
		if(i + 1 == n || memcmp(ms[i + 1]->origin, m->origin, 8) != 0) {
			mqs_pgarr_add_int(&b->upto_epoch, (int64_t)mqs_be64_get(m->origin));
			mqs_pgarr_add_int(&b->upto_ctr, (int64_t)mqs_be64_get(m->origin + 8));
		}
		if(m->cid[0] != '\0') {
			char key[CID_KEY_MAX];
			size_t kl = cid_key(key, m->sender, m->cid);
			if(hmap_get(seen, key, kl) != NULL) {
				m->status = MSG_DUPLICATE; /* repeated within the batch */
				continue;
			}
			if(!hmap_put(seen, key, kl, m)) return false;
		}
		if(!add_candidate(b, groups, m)) return false;
	}
	for(int c = 0; c < MQS_BATCH_COLUMNS; c++) {
		if(!barr_finish(&b->col[c])) return false;
	}
	return !b->groups.oom && !b->upto_epoch.oom && !b->upto_ctr.oom;
}

bool mqs_batch_build(struct mqs_batch *b, struct mqs_msg **ms, size_t n, struct mqs_msg **cand)
{
	static const uint32_t oids[MQS_BATCH_COLUMNS] = {OID_TEXT, OID_TEXT, OID_BYTEA, OID_INT2,
	                                                 OID_TEXT, OID_INT8, OID_INT8};
	struct hmap *seen = hmap_new(NULL), *groups = hmap_new(NULL);
	bool ok;

	memset(b, 0, sizeof(*b));
	b->cand = cand;
	for(int c = 0; c < MQS_BATCH_COLUMNS; c++) barr_init(&b->col[c], oids[c]);
	ok = seen != NULL && groups != NULL && build(b, ms, n, seen, groups);
	hmap_free(seen);
	hmap_free(groups);
	return ok;
}

void mqs_batch_stored(struct mqs_batch *b, long ord, int64_t id, int64_t seq, const char *ts)
{
	if(ord < 1 || (size_t)ord > b->ncand) return;
	struct mqs_msg *m = b->cand[ord - 1];
	m->status = MSG_STORED;
	m->id = id;
	m->seq = seq;
	snprintf(m->ts, sizeof(m->ts), "%s", ts);
}

void mqs_batch_settle(struct mqs_batch *b, const struct hmap *locked)
{
	for(size_t k = 0; k < b->ncand; k++) {
		struct mqs_msg *m = b->cand[k];
		if(m->status != MSG_PENDING) continue;
		m->status = locked != NULL && hmap_gets(locked, m->group) == NULL ? MSG_NO_GROUP : MSG_DUPLICATE;
	}
}

void mqs_batch_free(struct mqs_batch *b)
{
	if(b == NULL) return;
	for(int c = 0; c < MQS_BATCH_COLUMNS; c++) free(b->col[c].b);
	mqs_pgarr_free(&b->groups);
	mqs_pgarr_free(&b->upto_epoch);
	mqs_pgarr_free(&b->upto_ctr);
	b->cand = NULL;
	b->ncand = 0;
}
