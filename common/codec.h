/* codec: byte codecs both programs share: big-endian integers and base64 (standard and url). */
#ifndef MQS_CODEC_H
#define MQS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Big-endian integers at b (spool origins, libpq binary results, sync tokens). b need not be aligned. */
uint64_t mqs_be64_get(const void *b);
void mqs_be64_put(void *b, uint64_t v);
uint32_t mqs_be32_get(const void *b);
void mqs_be32_put(void *b, uint32_t v);

/* base64: url=false is standard with '=' padding (exactly OpenSSL's EVP_EncodeBlock); url=true is
 * base64url without padding. */

/* The encoded length of n bytes, excluding the NUL. */
size_t mqs_b64_len(size_t n, bool url);
/* Encodes n bytes of src into dst, which has room for mqs_b64_len(n, url) + 1 bytes, and writes a
 * NUL. Returns the encoded length. */
size_t mqs_b64_encode(const void *src, size_t n, char *dst, bool url);
/* Decodes n characters of base64url without padding (s need not be NUL-terminated) into dst, which
 * has room for cap bytes. Returns the number of bytes written, or -1 when s holds a character outside
 * [A-Za-z0-9_-] (padding '=' included), n is 4k+1, or the result would exceed cap bytes. Like OpenSSL's
 * decoder, the unused low bits of the last character are ignored. */
MQS_MUST_CHECK long mqs_b64url_decode(const char *s, size_t n, void *dst, size_t cap);

#endif
