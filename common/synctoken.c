/* synctoken: encoding and decoding of the opaque sync position token (see synctoken.h). */
#include "synctoken.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define SYNCTOKEN_VERSION 1

uint32_t synctoken_key(const char *gid)
{
	uint32_t h = 2166136261u;
	for(const unsigned char *p = (const unsigned char *)gid; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return h;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct synctoken_entry *x = a, *y = b;
	if(x->key != y->key) return x->key < y->key ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void synctoken_normalize(struct synctoken_entry *e, size_t *n)
{
	size_t w = 0;

	if(*n == 0) return;
	qsort(e, *n, sizeof(*e), cmp_entry);
	/* Sorted by (key, seq): the first of each key holds the lowest seq. */
	for(size_t r = 0; r < *n; r++) {
		if(w > 0 && e[w - 1].key == e[r].key) continue;
		e[w++] = e[r];
	}
	*n = w;
}

char *synctoken_encode(const struct synctoken_entry *e, size_t n)
{
	size_t rawlen = 1 + n * (4 + 10);
	unsigned char *raw = malloc(rawlen);
	char *out = NULL;
	size_t len = 0;

	if(raw == NULL) return NULL;
	raw[len++] = SYNCTOKEN_VERSION;
	for(size_t i = 0; i < n; i++) {
		uint64_t v = (uint64_t)e[i].seq;
		mqs_be32_put(raw + len, e[i].key);
		len += 4;
		do {
			unsigned char b = v & 0x7f;
			v >>= 7;
			raw[len++] = v ? (unsigned char)(b | 0x80) : b;
		} while(v);
	}
	out = malloc(mqs_b64_len(len, true) + 1);
	if(out != NULL) mqs_b64_encode(raw, len, out, true);
	free(raw);
	return out;
}

bool synctoken_decode(const char *s, struct synctoken_entry **out, size_t *n)
{
	size_t slen = s ? strlen(s) : 0;
	unsigned char *raw = NULL;
	struct synctoken_entry *e = NULL;
	size_t ne = 0;

	*out = NULL;
	*n = 0;
	if(slen == 0 || slen > SYNCTOKEN_MAX_LEN) return false;
	size_t cap = slen / 4 * 3 + 3;
	raw = malloc(cap);
	if(raw == NULL) return false;
	long m = mqs_b64url_decode(s, slen, raw, cap); /* -1: bad characters, or 4k+1 characters */
	if(m < 1 || raw[0] != SYNCTOKEN_VERSION) goto fail;
	size_t len = (size_t)m;
	/* Every entry takes at least 5 bytes. */
	e = malloc(((len - 1) / 5 + 1) * sizeof(*e));
	if(e == NULL) goto fail;
	for(size_t p = 1; p < len;) {
		if(len - p < 5) goto fail;
		uint32_t key = mqs_be32_get(raw + p);
		p += 4;
		uint64_t v = 0;
		int shift = 0;
		for(;;) {
			if(p >= len || shift > 56) goto fail;
			unsigned char b = raw[p++];
			v |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
			if(!(b & 0x80)) break;
		}
		if(v > (uint64_t)INT64_MAX) goto fail;
		if(ne > 0 && e[ne - 1].key >= key) goto fail;
		e[ne].key = key;
		e[ne].seq = (int64_t)v;
		ne++;
	}
	free(raw);
	if(ne == 0) {
		free(e);
		e = NULL;
	}
	*out = e;
	*n = ne;
	return true;

fail:
	free(raw);
	free(e);
	return false;
}

bool synctoken_find(const struct synctoken_entry *e, size_t n, uint32_t key, int64_t *seq)
{
	size_t lo = 0, hi = n;
	while(lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if(e[mid].key == key) {
			*seq = e[mid].seq;
			return true;
		}
		if(e[mid].key < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}
