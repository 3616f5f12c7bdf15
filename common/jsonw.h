/* jsonw: an append-only JSON text writer for the large responses (sync and history pages), which
 * would otherwise cost one jansson object and several allocations per message. */
#ifndef MQS_JSONW_H
#define MQS_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero-initialize. After any allocation failure oom is set and further writes are ignored. */
struct jsonw {
	char *s; /* NUL-terminated text; the caller takes it (and frees it) when done */
	size_t len, cap;
	bool oom;
};

/* Appends n raw bytes (already JSON). */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);
/* Appends a NUL-terminated raw string (already JSON). */
void jsonw_lit(struct jsonw *w, const char *s);
/* Appends s (n bytes, valid UTF-8, may contain NUL) as a quoted, escaped JSON string. */
void jsonw_str(struct jsonw *w, const char *s, size_t n);
/* Appends a decimal integer. */
void jsonw_int(struct jsonw *w, int64_t v);
/* Appends the standard base64 of n bytes as a quoted JSON string. */
void jsonw_base64(struct jsonw *w, const unsigned char *s, size_t n);

/* True when s (n bytes) is valid UTF-8: no overlong forms, no surrogates, nothing past
 * U+10FFFF (the same rule jansson applies). */
bool jsonw_utf8_valid(const char *s, size_t n);

/* Frees the text (when not taken). */
void jsonw_free(struct jsonw *w);

#endif
