/* synctoken: encoding and decoding of the opaque sync position token (see synctoken.h). */
#include "synctoken.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

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
		raw[len++] = (unsigned char)(e[i].key >> 24);
		raw[len++] = (unsigned char)(e[i].key >> 16);
		raw[len++] = (unsigned char)(e[i].key >> 8);
		raw[len++] = (unsigned char)e[i].key;
		do {
			unsigned char b = v & 0x7f;
			v >>= 7;
			raw[len++] = v ? (unsigned char)(b | 0x80) : b;
		} while(v);
	}
	/* EVP_EncodeBlock writes 4 characters per 3 bytes plus a NUL. */
	out = malloc((len + 2) / 3 * 4 + 1);
	if(out == NULL) goto done;
	int m = EVP_EncodeBlock((unsigned char *)out, raw, (int)len);
	while(m > 0 && out[m - 1] == '=') m--;
	out[m] = '\0';
	for(int i = 0; i < m; i++) {
		if(out[i] == '+')
			out[i] = '-';
		else if(out[i] == '/')
			out[i] = '_';
	}
done:
	free(raw);
	return out;
}

bool synctoken_decode(const char *s, struct synctoken_entry **out, size_t *n)
{
	size_t slen = s ? strlen(s) : 0;
	char *b64 = NULL;
	unsigned char *raw = NULL;
	struct synctoken_entry *e = NULL;
	size_t ne = 0;

	*out = NULL;
	*n = 0;
	if(slen == 0 || slen > SYNCTOKEN_MAX_LEN || slen % 4 == 1) return false;
	for(size_t i = 0; i < slen; i++) {
		char c = s[i];
		if(!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		     c == '_'))
			return false;
	}
	size_t pad = (4 - slen % 4) % 4;
	b64 = malloc(slen + pad + 1);
	raw = malloc((slen + pad) / 4 * 3 + 1);
	if(b64 == NULL || raw == NULL) goto fail;
	for(size_t i = 0; i < slen; i++) b64[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	memset(b64 + slen, '=', pad);
	b64[slen + pad] = '\0';
	int m = EVP_DecodeBlock(raw, (unsigned char *)b64, (int)(slen + pad));
	if(m < 0 || (size_t)m < pad) goto fail;
	size_t len = (size_t)m - pad; /* EVP_DecodeBlock counts the padding as zero bytes */
	if(len < 1 || raw[0] != SYNCTOKEN_VERSION) goto fail;
	/* Every entry takes at least 5 bytes. */
	e = malloc(((len - 1) / 5 + 1) * sizeof(*e));
	if(e == NULL) goto fail;
	for(size_t p = 1; p < len;) {
		if(len - p < 5) goto fail;
		uint32_t key =
		        (uint32_t)raw[p] << 24 | (uint32_t)raw[p + 1] << 16 | (uint32_t)raw[p + 2] << 8 | raw[p + 3];
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
	free(b64);
	free(raw);
	if(ne == 0) {
		free(e);
		e = NULL;
	}
	*out = e;
	*n = ne;
	return true;

fail:
	free(b64);
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
