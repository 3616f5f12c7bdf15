/* jsonw: an append-only JSON text writer for large responses (see jsonw.h). */
#include "jsonw.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "util.h"

/* Makes room for n more bytes plus the NUL. False (and oom) on failure. */
static bool reserve(struct jsonw *w, size_t n)
{
	if(w->oom) return false;
	if(n >= SIZE_MAX - w->len || !mqs_grow(&w->s, &w->cap, w->len + n + 1, 4096)) {
		w->oom = true;
		return false;
	}
	return true;
}

void jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	if(!reserve(w, n)) return;
	memcpy(w->s + w->len, s, n);
	w->len += n;
	w->s[w->len] = '\0';
}

void jsonw_lit(struct jsonw *w, const char *s)
{
	jsonw_raw(w, s, strlen(s));
}

/* Bytes that cannot appear raw inside a JSON string. */
static bool needs_escape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

void jsonw_str(struct jsonw *w, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";

	/* Worst case: every byte becomes \u00XX. */
	if(!reserve(w, n * 6 + 2)) return;
	char *o = w->s + w->len;
	*o++ = '"';
	for(size_t i = 0; i < n;) {
		/* Copy the run of bytes that need no escape in one go. */
		size_t j = i;
		while(j < n && !needs_escape((unsigned char)s[j])) j++;
		memcpy(o, s + i, j - i);
		o += j - i;
		if(j == n) break;
		unsigned char c = (unsigned char)s[j];
		*o++ = '\\';
		switch(c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
		i = j + 1;
	}
	*o++ = '"';
	*o = '\0';
	w->len = (size_t)(o - w->s);
}

void jsonw_int(struct jsonw *w, int64_t v)
{
	char buf[24];
	char *p = buf + sizeof(buf);
	/* Negate in unsigned arithmetic so INT64_MIN works. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while(u);
	if(v < 0) *--p = '-';
	jsonw_raw(w, p, (size_t)(buf + sizeof(buf) - p));
}

void jsonw_base64(struct jsonw *w, const unsigned char *s, size_t n)
{
	if(!reserve(w, mqs_b64_len(n, false) + 2)) return;
	w->s[w->len++] = '"';
	w->len += mqs_b64_encode(s, n, w->s + w->len, false);
	w->s[w->len++] = '"';
	w->s[w->len] = '\0';
}

bool jsonw_utf8_valid(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while(i < n) {
		unsigned char c = s[i];
		if(c < 0x80) {
			i++;
			/* ASCII runs are the common case: skip 8 bytes at a time while no high bit is set. */
			while(n - i >= 8) {
				uint64_t x;
				memcpy(&x, s + i, 8);
				if(x & 0x8080808080808080ull) break;
				i += 8;
			}
			continue;
		}
		size_t len;
		uint32_t cp;
		if(c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if(c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if(c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if(n - i < len) return false;
		for(size_t k = 1; k < len; k++) {
			if((s[i + k] & 0xc0) != 0x80) return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		   (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

void jsonw_free(struct jsonw *w)
{
	free(w->s);
	memset(w, 0, sizeof(*w));
}
