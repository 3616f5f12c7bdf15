/* fuzz_notify: the NOTIFY payload parsers (common/notify.c), mqs_id_valid_n (common/ids.c) and
 * mqs_parse_int (common/util.c) on any string, each against a reference written from its header. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>

#include "fuzz.h"
#include "ids.h"
#include "notify.h"
#include "util.h"

static bool ref_id(const char *s, size_t n)
{
	if(n < 1 || n > MQS_ID_MAX) return false;
	for(size_t i = 0; i < n; i++) {
		if(!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') return false;
	}
	return true;
}

static void check_ids(const uint8_t *data, size_t size, const char *s)
{
	FUZZ_CHECK(mqs_id_valid_n((const char *)data, size) == ref_id((const char *)data, size));
	FUZZ_CHECK(mqs_id_valid(s) == ref_id(s, strlen(s)));
	FUZZ_CHECK(!mqs_id_valid_n(NULL, size) && !mqs_id_valid(NULL));
}

static void check_msg(const char *s)
{
	char gid[MQS_ID_MAX + 1];
	int64_t seq = -1;
	bool ok = mqs_notify_msg_parse(s, gid, &seq);
	const char *colon = strchr(s, ':');
	bool want = colon != NULL && ref_id(s, (size_t)(colon - s)) && colon[1] != '\0' &&
	            strspn(colon + 1, "0123456789") == strlen(colon + 1);
	unsigned long long v = 0;

	if(want) {
		errno = 0;
		v = strtoull(colon + 1, NULL, 10);
		want = errno == 0 && v <= (unsigned long long)INT64_MAX;
	}
	FUZZ_CHECK(ok == want);
	if(ok) {
		FUZZ_CHECK(strlen(gid) == (size_t)(colon - s) && memcmp(gid, s, strlen(gid)) == 0);
		FUZZ_CHECK(seq == (int64_t)v);
	}
}

/* The id in s[0..n) was copied to out. */
static bool same_id(const char *out, const char *s, size_t n)
{
	return strlen(out) == n && memcmp(out, s, n) == 0;
}

static void check_state(const char *s)
{
	char a[MQS_ID_MAX + 1], b[MQS_ID_MAX + 1] = "untouched";
	enum mqs_notify_state r = mqs_notify_state_parse(s, a, b);
	enum mqs_notify_state want = MQS_NOTIFY_BAD;

	if(strncmp(s, "user:", 5) == 0 && ref_id(s + 5, strlen(s + 5))) want = MQS_NOTIFY_USER;
	if(strncmp(s, "group:", 6) == 0 && ref_id(s + 6, strlen(s + 6))) want = MQS_NOTIFY_GROUP;
	const char *g = s + 7, *colon = strncmp(s, "member:", 7) == 0 ? strchr(g, ':') : NULL;
	if(colon != NULL && ref_id(g, (size_t)(colon - g)) && ref_id(colon + 1, strlen(colon + 1)))
		want = MQS_NOTIFY_MEMBER;
	FUZZ_CHECK(r == want);
	if(r == MQS_NOTIFY_USER) FUZZ_CHECK(same_id(a, s + 5, strlen(s + 5)));
	if(r == MQS_NOTIFY_GROUP) FUZZ_CHECK(same_id(a, s + 6, strlen(s + 6)));
	if(r == MQS_NOTIFY_MEMBER) {
		FUZZ_CHECK(same_id(a, g, (size_t)(colon - g)) && same_id(b, colon + 1, strlen(colon + 1)));
	} else {
		FUZZ_CHECK(strcmp(b, "untouched") == 0);
	}
	FUZZ_CHECK(mqs_notify_state_parse(NULL, a, b) == MQS_NOTIFY_BAD);
}

/* mqs_parse_int with small bounds (the full int64 range is checked in fuzz_input_text): exactly
 * -?[0-9]+ whose value, read digit by digit, lies within the bounds. */
static void check_long(const char *s)
{
	static const int64_t bounds[][2] = {{-100, 100}, {1, 65535}};

	for(size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
		int64_t v = 7;
		bool ok = mqs_parse_int(s, bounds[i][0], bounds[i][1], &v);
		const char *p = s[0] == '-' ? s + 1 : s;
		size_t digits = strspn(p, "0123456789");
		bool want = digits > 0 && p[digits] == '\0';
		long long m = 0;

		for(size_t k = 0; want && k < digits; k++) {
			m = m * 10 + (p[k] - '0');
			if(m > 1000000) break; /* far outside both bounds */
		}
		if(s[0] == '-') m = -m;
		want = want && m >= bounds[i][0] && m <= bounds[i][1];
		FUZZ_CHECK(ok == want);
		FUZZ_CHECK(ok ? v == m : v == 7);
	}
	FUZZ_CHECK(!mqs_parse_int(NULL, INT64_MIN, INT64_MAX, &(int64_t){0}));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size);

	check_ids(data, size, s);
	check_msg(s);
	check_state(s);
	check_long(s);
	free(s);
	return 0;
}
