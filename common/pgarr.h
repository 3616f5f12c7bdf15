/* pgarr: PostgreSQL text array literals built element by element ("{"a","b\"c"}"), for the ANY($1)
 * and unnest($1) parameters of both programs. */
#ifndef MQS_PGARR_H
#define MQS_PGARR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Zero-initialize. After an allocation failure (or a NUL byte in an element, which PostgreSQL text
 * cannot hold) oom is set, further additions are ignored and mqs_pgarr_text returns NULL. */
struct mqs_pgarr {
	char *s;         /* the literal without its closing '}' (len bytes), then "}" and a NUL */
	size_t len, cap; /* bytes in s before the '}', bytes allocated */
	size_t n;        /* elements so far */
	bool oom;
};

/* Appends n bytes of s as one element, double-quoted with " and \ escaped, so that an id such as
 * null or NULL is never read as SQL NULL. */
void mqs_pgarr_add_str(struct mqs_pgarr *a, const char *s, size_t n);
/* Appends a decimal integer (unquoted: it is never read as NULL). */
void mqs_pgarr_add_int(struct mqs_pgarr *a, int64_t v);
/* The literal ("{}" when empty), or NULL after an allocation failure. Owned by a: valid until the
 * next call on a. */
MQS_MUST_CHECK const char *mqs_pgarr_text(struct mqs_pgarr *a);
/* Empties a (and clears oom), keeping the buffer. */
void mqs_pgarr_reset(struct mqs_pgarr *a);
/* Frees the buffer and zeroes a. Accepts a zeroed a. */
void mqs_pgarr_free(struct mqs_pgarr *a);

#endif
