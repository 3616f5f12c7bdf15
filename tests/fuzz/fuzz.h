/* fuzz: what every fuzz target shares: the libFuzzer entry point, a check that aborts, input helpers. */
#ifndef MQS_FUZZ_H
#define MQS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A property of the code under test: on failure, names it and aborts (libFuzzer then keeps the input).
 * Not assert(): release builds define NDEBUG. */
#define FUZZ_CHECK(c)                                                                                                  \
	do {                                                                                                           \
		if(!(c)) {                                                                                             \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #c);                       \
			abort();                                                                                       \
		}                                                                                                      \
	} while(0)

/* Each target defines it; libFuzzer or tests/fuzz/replay.c calls it once per input. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A malloc'ed copy of n bytes of p (n may be 0). Aborts when out of memory. */
static inline void *fuzz_dup(const void *p, size_t n)
{
	void *d = malloc(n + 1);

	FUZZ_CHECK(d != NULL);
	if(n > 0) memcpy(d, p, n);
	return d;
}

/* A malloc'ed NUL-terminated copy of data (caller frees): the input as a C string, cut at its first
 * NUL. Aborts when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size);

	s[size] = '\0';
	return s;
}

/* Reads the input front to back; past its end, every read yields zeros. */
struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t fuzz_u8(struct fuzz_in *in)
{
	if(in->n == 0) return 0;
	in->n--;
	return *in->p++;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t v = 0;

	for(int i = 0; i < 8; i++) v = v << 8 | fuzz_u8(in);
	return v;
}

/* Takes up to want bytes; *got says how many were there. The pointer points into the input. */
static inline const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t want, size_t *got)
{
	const uint8_t *p = in->p;

	*got = want < in->n ? want : in->n;
	in->p += *got;
	in->n -= *got;
	return p;
}

#endif
