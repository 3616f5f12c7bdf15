/* batch: choosing the writer's next batch of messages and building its statement parameters, and
 * reading the outcome back into the messages' statuses. Pure (no libpq calls, no threads): the
 * writer thread calls it; tests/unit/test_batch.c exercises it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

/* ---- text array literals ----------------------------------------------------------------------- */

void mqs_textarr_add(struct mqs_textarr *a, const char *s)
{
	size_t n = strlen(s);
	size_t need = a->len + 2 * n + 5;

	if(a->oom) return;
	if(need > a->cap) {
		size_t c = a->cap ? a->cap * 2 : 256;
		while(c < need) c *= 2;
		char *b = realloc(a->s, c);
		if(b == NULL) {
			a->oom = true;
			return;
		}
		a->s = b;
		a->cap = c;
	}
	a->s[a->len] = a->len == 0 ? '{' : ',';
	a->len++;
	a->s[a->len++] = '"';
	for(size_t i = 0; i < n; i++) {
		if(s[i] == '"' || s[i] == '\\') a->s[a->len++] = '\\';
		a->s[a->len++] = s[i];
	}
	a->s[a->len++] = '"';
	a->s[a->len] = '}';
	a->s[a->len + 1] = '\0';
}

void mqs_textarr_add_int(struct mqs_textarr *a, int64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	mqs_textarr_add(a, num);
}

const char *mqs_textarr_text(const struct mqs_textarr *a)
{
	if(a->oom) return NULL;
	return a->len == 0 ? "{}" : a->s;
}

void mqs_textarr_free(struct mqs_textarr *a)
{
	free(a->s);
	memset(a, 0, sizeof(*a));
}

/* ---- binary array parameters ------------------------------------------------------------------- */

#define OID_BYTEA 17
#define OID_INT8  20
#define OID_INT2  21
#define OID_TEXT  25

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

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
	if(a->len + 4 + n > a->cap) {
		size_t cap = a->cap ? a->cap : 4096;
		while(cap < a->len + 4 + n) cap *= 2;
		uint8_t *b = realloc(a->b, cap);
		if(b == NULL) {
			a->ok = false;
			return;
		}
		a->b = b;
		a->cap = cap;
	}
	put_be32(a->b + a->len, data ? (uint32_t)n : 0xffffffffu);
	a->len += 4;
	if(data) memcpy(a->b + a->len, data, n);
	if(data)
		a->len += n;
	else
		a->has_null = true;
	a->count++;
}

static void barr_put_int(struct mqs_barr *a, int64_t v, size_t width)
{
	uint8_t b[8];
	for(size_t i = 0; i < width; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * (width - 1 - i)));
	barr_put(a, b, width);
}

/* Writes the header. False if an allocation failed. */
static bool barr_finish(struct mqs_barr *a)
{
	if(!a->ok || (a->b == NULL && (a->b = malloc(20)) == NULL)) return false;
	put_be32(a->b, 1);
	put_be32(a->b + 4, a->has_null ? 1 : 0);
	put_be32(a->b + 8, a->oid);
	put_be32(a->b + 12, (uint32_t)a->count);
	put_be32(a->b + 16, 1);
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
		mqs_textarr_add(&b->groups, m->group);
	}
	b->cand[b->ncand++] = m;
	barr_put(&b->col[0], m->group, strlen(m->group));
	barr_put(&b->col[1], m->sender, strlen(m->sender));
	barr_put(&b->col[2], m->payload, m->payload_len);
	barr_put_int(&b->col[3], m->qos, 2);
	barr_put(&b->col[4], m->cid[0] ? m->cid : NULL, strlen(m->cid));
	barr_put_int(&b->col[5], mqs_be64(m->origin), 8);
	barr_put_int(&b->col[6], mqs_be64(m->origin + 8), 8);
	return true;
}

/* Builds the candidates and parameters; see mqs_batch_build. */
static bool build(struct mqs_batch *b, struct mqs_msg **ms, size_t n, struct hmap *seen, struct hmap *groups)
{
	for(size_t i = 0; i < n; i++) {
		struct mqs_msg *m = ms[i];
		m->status = MSG_PENDING;
		/* spool_progress: the highest counter of each epoch run (counters rise within a run). */
		if(i + 1 == n || mqs_be64(ms[i + 1]->origin) != mqs_be64(m->origin)) {
			mqs_textarr_add_int(&b->upto_epoch, mqs_be64(m->origin));
			mqs_textarr_add_int(&b->upto_ctr, mqs_be64(m->origin + 8));
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
	return mqs_textarr_text(&b->groups) != NULL && mqs_textarr_text(&b->upto_epoch) != NULL &&
	       mqs_textarr_text(&b->upto_ctr) != NULL;
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
	mqs_textarr_free(&b->groups);
	mqs_textarr_free(&b->upto_epoch);
	mqs_textarr_free(&b->upto_ctr);
	b->cand = NULL;
	b->ncand = 0;
}
