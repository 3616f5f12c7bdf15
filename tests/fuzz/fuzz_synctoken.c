/* fuzz_synctoken: synctoken_decode (syncd/synctoken.c) on any string: what it accepts is sorted, and
 * re-encodes to a token decoding to the same entries; entries built from the input round-trip through
 * normalize + encode + decode. */
#include "fuzz.h"
#include "synctoken.h"

/* Field by field: the struct has padding. */
static bool same_entries(const struct synctoken_entry *a, const struct synctoken_entry *b, size_t n)
{
	for(size_t i = 0; i < n; i++) {
		if(a[i].key != b[i].key || a[i].seq != b[i].seq) return false;
	}
	return true;
}

static void check_decoded(const char *s, const struct synctoken_entry *e, size_t n)
{
	struct synctoken_entry *back = NULL;
	size_t nback = 0;
	char *t;

	for(size_t i = 0; i < n; i++) {
		FUZZ_CHECK(e[i].seq >= 0);
		if(i > 0) FUZZ_CHECK(e[i - 1].key < e[i].key);
	}
	t = synctoken_encode(e, n);
	FUZZ_CHECK(t != NULL);
	/* The canonical token is never longer (minimal varints; base64 ignoring unused bits). */
	FUZZ_CHECK(strlen(t) <= strlen(s));
	FUZZ_CHECK(synctoken_decode(t, &back, &nback));
	FUZZ_CHECK(nback == n);
	FUZZ_CHECK(same_entries(back, e, n));
	for(size_t i = 0; i < n; i++) {
		int64_t seq = -1;
		FUZZ_CHECK(synctoken_find(e, n, e[i].key, &seq) && seq == e[i].seq);
	}
	free(back);
	free(t);
}

/* Entries from the input (4-byte key, 8-byte seq), normalized: sorted, one per key with its lowest
 * seq; then a round trip. */
static void check_built(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	size_t n = size / 12, m;
	struct synctoken_entry *e = malloc((n ? n : 1) * sizeof(*e)), *orig, *back = NULL;
	char *t;

	FUZZ_CHECK(e != NULL);
	for(size_t i = 0; i < n; i++) {
		/* Few distinct keys, so that duplicates are common. */
		e[i].key = (uint32_t)fuzz_u64(&in) % 7 * 0x9e3779b1u;
		e[i].seq = (int64_t)(fuzz_u64(&in) >> (fuzz_u8(&in) % 63 + 1));
	}
	orig = fuzz_dup(e, n * sizeof(*e)); /* ours: freed below */
	m = n;
	synctoken_normalize(e, &m);
	FUZZ_CHECK(m <= n);
	for(size_t i = 0; i < m; i++) {
		if(i > 0) FUZZ_CHECK(e[i - 1].key < e[i].key);
		for(size_t j = 0; j < n; j++) FUZZ_CHECK(orig[j].key != e[i].key || orig[j].seq >= e[i].seq);
	}
	for(size_t j = 0; j < n; j++) {
		int64_t seq;
		FUZZ_CHECK(synctoken_find(e, m, orig[j].key, &seq) && seq <= orig[j].seq);
	}
	t = synctoken_encode(e, m);
	FUZZ_CHECK(t != NULL);
	size_t nback = 0;
	FUZZ_CHECK(synctoken_decode(t, &back, &nback));
	FUZZ_CHECK(nback == m);
	FUZZ_CHECK(same_entries(back, e, m));
	free(back);
	free(t);
	free(orig);
	free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);
	struct synctoken_entry *e = (struct synctoken_entry *)1;
	size_t n = 99;

	if(synctoken_decode(s, &e, &n)) {
		FUZZ_CHECK((e == NULL) == (n == 0));
		check_decoded(s, e, n);
	} else {
		FUZZ_CHECK(e == NULL && n == 0);
	}
	free(e);
	free(s);
	check_built(data, size);
	return 0;
}
