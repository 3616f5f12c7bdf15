/* codec: big-endian integers and base64 (see codec.h). Owns no memory. */
#include "codec.h"

uint64_t mqs_be64_get(const void *b)
{
	const uint8_t *p = b;
	uint64_t v = 0;
	for(int i = 0; i < 8; i++) v = (v << 8) | p[i];
	return v;
}

void mqs_be64_put(void *b, uint64_t v)
{
	uint8_t *p = b;
	for(int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

uint32_t mqs_be32_get(const void *b)
{
	const uint8_t *p = b;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void mqs_be32_put(void *b, uint32_t v)
{
	uint8_t *p = b;
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static const char b64_std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t mqs_b64_len(size_t n, bool url)
{
	if(!url) return (n + 2) / 3 * 4;
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t mqs_b64_encode(const void *src, size_t n, char *dst, bool url)
{
	const uint8_t *s = src;
	const char *a = url ? b64_url : b64_std;
	char *o = dst;
	size_t i = 0;

	for(; n - i >= 3; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*o++ = a[v >> 18];
		*o++ = a[(v >> 12) & 63];
		*o++ = a[(v >> 6) & 63];
		*o++ = a[v & 63];
	}
	if(i < n) {
		uint32_t v = (uint32_t)s[i] << 16 | (n - i == 2 ? (uint32_t)s[i + 1] << 8 : 0);
		*o++ = a[v >> 18];
		*o++ = a[(v >> 12) & 63];
		if(n - i == 2)
			*o++ = a[(v >> 6) & 63];
		else if(!url)
			*o++ = '=';
		if(!url) *o++ = '=';
	}
	*o = '\0';
	return (size_t)(o - dst);
}

/* The 6-bit value of a base64url character, or -1. */
static int url_value(char c)
{
	if(c >= 'A' && c <= 'Z') return c - 'A';
	if(c >= 'a' && c <= 'z') return c - 'a' + 26;
	if(c >= '0' && c <= '9') return c - '0' + 52;
	if(c == '-') return 62;
	if(c == '_') return 63;
	return -1;
}

long mqs_b64url_decode(const char *s, size_t n, void *dst, size_t cap)
{
	uint8_t *o = dst;
	size_t len = 0;
	uint32_t acc = 0;
	int bits = 0;

	if(n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap) return -1;
	for(size_t i = 0; i < n; i++) {
		int v = url_value(s[i]);
		if(v < 0) return -1;
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if(bits >= 8) {
			bits -= 8;
			o[len++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)len;
}
