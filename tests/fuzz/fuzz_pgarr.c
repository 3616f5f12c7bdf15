/* fuzz_pgarr: mqs_pgarr (common/pgarr.c) on elements taken from the input: the literal re-parses, as
 * PostgreSQL's array_in reads a one-dimensional text array, into the same elements (quotes balanced,
 * escapes undone, no element read as NULL); an element holding a NUL makes the whole literal NULL. */
#include <inttypes.h>

#include "fuzz.h"
#include "pgarr.h"

#define MAX_ELEMS 64

struct elem {
	bool is_int;
	int64_t v;
	const char *s;
	size_t n;
};

/* Reads element i of literal lit at *p (past '{' or ','); checks it is e. */
static void check_elem(const char **p, const struct elem *e)
{
	const char *q = *p;

	if(e->is_int) {
		char num[24];
		int n = snprintf(num, sizeof(num), "%" PRId64, e->v);
		FUZZ_CHECK(strncmp(q, num, (size_t)n) == 0);
		*p = q + n;
		return;
	}
	FUZZ_CHECK(*q == '"');
	q++;
	for(size_t i = 0; i < e->n; i++) {
		if(*q == '\\')
			q++;
		else
			FUZZ_CHECK(*q != '"' && *q != '\\');
		FUZZ_CHECK(*q == e->s[i]);
		q++;
	}
	FUZZ_CHECK(*q == '"');
	*p = q + 1;
}

static void check_literal(const char *lit, const struct elem *e, size_t n)
{
	const char *p = lit;

	if(n == 0) {
		FUZZ_CHECK(strcmp(lit, "{}") == 0);
		return;
	}
	for(size_t i = 0; i < n; i++) {
		FUZZ_CHECK(*p == (i == 0 ? '{' : ','));
		p++;
		check_elem(&p, &e[i]);
	}
	FUZZ_CHECK(strcmp(p, "}") == 0);
}

/* Elements: a tag byte (low bit: integer), then 8 bytes of integer or a length byte and the bytes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct elem e[MAX_ELEMS];
	struct mqs_pgarr a = {0};
	size_t n = 0;
	bool has_nul = false;

	while(in.n > 0 && n < MAX_ELEMS) {
		uint8_t tag = fuzz_u8(&in);
		e[n].is_int = tag & 1;
		if(e[n].is_int) {
			e[n].v = (int64_t)fuzz_u64(&in);
		} else {
			e[n].s = (const char *)fuzz_bytes(&in, fuzz_u8(&in), &e[n].n);
			has_nul = has_nul || (e[n].n > 0 && memchr(e[n].s, '\0', e[n].n) != NULL);
		}
		n++;
	}
	/* Twice: the second time after a reset, reusing the buffer. */
	for(int round = 0; round < 2; round++) {
		for(size_t i = 0; i < n; i++) {
			if(e[i].is_int)
				mqs_pgarr_add_int(&a, e[i].v);
			else
				mqs_pgarr_add_str(&a, e[i].s, e[i].n);
		}
		const char *lit = mqs_pgarr_text(&a);
		if(has_nul) {
			FUZZ_CHECK(lit == NULL);
		} else {
			FUZZ_CHECK(lit != NULL);
			check_literal(lit, e, n);
		}
		mqs_pgarr_reset(&a);
		FUZZ_CHECK(!a.oom && strcmp(mqs_pgarr_text(&a), "{}") == 0);
	}
	mqs_pgarr_free(&a);
	FUZZ_CHECK(a.s == NULL && a.len == 0 && a.n == 0);
	return 0;
}
