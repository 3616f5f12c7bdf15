/* pgarr: PostgreSQL array literals (see pgarr.h). Owns the buffer of each struct mqs_pgarr. */
#include "pgarr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for a separator, n more bytes and the closing "}" plus NUL. False (and oom) on failure. */
static bool reserve(struct mqs_pgarr *a, size_t n)
{
	if(a->oom) return false;
	if(n > SIZE_MAX / 4 || a->len > SIZE_MAX / 2 || !mqs_grow(&a->s, &a->cap, a->len + n + 3, 256)) {
		a->oom = true;
		return false;
	}
	return true;
}

/* Writes the separator before a new element ('{' for the first). Room was reserved. */
static void open_element(struct mqs_pgarr *a)
{
	a->s[a->len++] = a->n == 0 ? '{' : ',';
}

/* Closes the literal after an element was written. */
static void close_element(struct mqs_pgarr *a)
{
	a->n++;
	a->s[a->len] = '}';
	a->s[a->len + 1] = '\0';
}

void mqs_pgarr_add_str(struct mqs_pgarr *a, const char *s, size_t n)
{
	if(n > 0 && memchr(s, '\0', n) != NULL) a->oom = true;
	/* Worst case: every byte escaped, plus the quotes. */
	if(!reserve(a, 2 * n + 2)) return;
	open_element(a);
	a->s[a->len++] = '"';
	for(size_t i = 0; i < n; i++) {
		if(s[i] == '"' || s[i] == '\\') a->s[a->len++] = '\\';
		a->s[a->len++] = s[i];
	}
	a->s[a->len++] = '"';
	close_element(a);
}

void mqs_pgarr_add_int(struct mqs_pgarr *a, int64_t v)
{
	char num[24];
	int n = snprintf(num, sizeof(num), "%" PRId64, v);

	if(!reserve(a, (size_t)n)) return;
	open_element(a);
	memcpy(a->s + a->len, num, (size_t)n);
	a->len += (size_t)n;
	close_element(a);
}

const char *mqs_pgarr_text(struct mqs_pgarr *a)
{
	if(a->oom) return NULL;
	return a->n == 0 ? "{}" : a->s;
}

void mqs_pgarr_reset(struct mqs_pgarr *a)
{
	a->len = 0;
	a->n = 0;
	a->oom = false;
}

void mqs_pgarr_free(struct mqs_pgarr *a)
{
	free(a->s);
	memset(a, 0, sizeof(*a));
}
