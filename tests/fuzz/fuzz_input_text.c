/* fuzz_input_text: mqsyncd's text input parsers on any string: mqs_parse_int (common/util.c) against
 * strtoll, input_unescape, input_bearer and input_is_json_type against the rules input.h states. */
#include <errno.h>
#include <strings.h>

#include "fuzz.h"
#include "input.h"
#include "util.h"

/* util.h's rule for mqs_parse_int: -?[0-9]+ (leading zeros allowed), within int64 and in range. */
static bool int_reference(const char *s, int64_t min, int64_t max, int64_t *out)
{
	const char *d = s[0] == '-' ? s + 1 : s;
	size_t n = strlen(d);
	char *end;

	if(n == 0 || strspn(d, "0123456789") != n) return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if(errno != 0 || *end != '\0' || v < min || v > max) return false;
	*out = v;
	return true;
}

static void check_int(const char *s)
{
	static const int64_t bounds[][2] = {{INT64_MIN, INT64_MAX}, {0, INT64_MAX}, {-1000, 1000}, {1, 500}};

	for(size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		int64_t got = 42, want = 42;
		bool ok = mqs_parse_int(s, bounds[i][0], bounds[i][1], &got);
		FUZZ_CHECK(ok == int_reference(s, bounds[i][0], bounds[i][1], &want));
		FUZZ_CHECK(got == want);
	}
}

static int hexval(char c)
{
	if(c >= '0' && c <= '9') return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decoding never grows the string nor cuts it with a NUL; it undoes exactly the well-formed, non-%00
 * escapes, which a second reading from the left reproduces. */
static void check_unescape(const char *s)
{
	char *u = fuzz_cstr((const uint8_t *)s, strlen(s));
	size_t n = input_unescape(u), len = strlen(s), r = 0, w = 0;

	FUZZ_CHECK(n == strlen(u) && n <= len);
	for(; s[r]; w++) {
		FUZZ_CHECK(w < n);
		int v = s[r] == '%' && hexval(s[r + 1]) >= 0 && hexval(s[r + 2]) >= 0
		                ? hexval(s[r + 1]) * 16 + hexval(s[r + 2])
		                : 0;
		FUZZ_CHECK(u[w] == (v ? (char)v : s[r]));
		r += v ? 3 : 1;
	}
	FUZZ_CHECK(w == n);
	free(u);
}

static void check_bearer(const char *s)
{
	size_t n = 0;
	const char *t = input_bearer(s, &n);
	char hdr[600];

	if(t != NULL) {
		FUZZ_CHECK(strncasecmp(s, "bearer ", 7) == 0);
		FUZZ_CHECK(t > s + 6 && t + n <= s + strlen(s) && n >= 1 && n <= 512);
		for(const char *p = s + 6; p < t; p++) FUZZ_CHECK(*p == ' ');
		for(size_t i = 0; i < n; i++) FUZZ_CHECK(t[i] != ' ' && t[i] != '\t');
		for(const char *p = t + n; *p; p++) FUZZ_CHECK(*p == ' ' || *p == '\t');
	}
	/* "Bearer " + any token without blanks (up to 512 bytes) is that token. */
	size_t k = strcspn(s, " \t");
	if(k >= 1 && k <= 512) {
		snprintf(hdr, sizeof(hdr), "%s  %.*s \t", s[0] & 1 ? "bEARER" : "Bearer", (int)k, s);
		t = input_bearer(hdr, &n);
		FUZZ_CHECK(t == hdr + 8 && n == k && memcmp(t, s, k) == 0);
	}
}

static void check_json_type(const char *s)
{
	const char *p = s + strspn(s, " ");

	if(input_is_json_type(s)) {
		FUZZ_CHECK(strncasecmp(p, "application/json", 16) == 0);
		p += 16 + strspn(p + 16, " ");
		FUZZ_CHECK(*p == '\0' || *p == ';');
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_int(s);
	check_unescape(s);
	check_bearer(s);
	check_json_type(s);
	free(s);
	return 0;
}
