/* Unit tests for common/codec: big-endian integers and base64, pinned against OpenSSL's encoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <string.h>

#include "codec.h"

static void test_be(void **state)
{
	uint8_t b[8];

	mqs_be64_put(b, 0x0102030405060708ull);
	assert_memory_equal(b, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	assert_true(mqs_be64_get(b) == 0x0102030405060708ull);
	mqs_be64_put(b, UINT64_MAX);
	assert_true(mqs_be64_get(b) == UINT64_MAX);
	assert_true((int64_t)mqs_be64_get("\xff\xff\xff\xff\xff\xff\xff\xfe") == -2);
	assert_true(mqs_be64_get("\x80\0\0\0\0\0\0\0") == 0x8000000000000000ull);
	mqs_be32_put(b, 0xdeadbeef);
	assert_memory_equal(b, "\xde\xad\xbe\xef", 4);
	assert_true(mqs_be32_get(b) == 0xdeadbeef);
	assert_true(mqs_be32_get("\0\0\0\x01") == 1);
	/* Unaligned. */
	uint8_t u[9] = {0};
	mqs_be64_put(u + 1, 42);
	assert_true(mqs_be64_get(u + 1) == 42);
	assert_int_equal(u[8], 42);
}

/* What syncd/synctoken.c does today: EVP_EncodeBlock, strip '=', map +/ to -_. */
static size_t url_reference(const uint8_t *raw, size_t n, char *out)
{
	int m = EVP_EncodeBlock((unsigned char *)out, raw, (int)n);
	while(m > 0 && out[m - 1] == '=') m--;
	out[m] = '\0';
	for(int i = 0; i < m; i++) out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
	return (size_t)m;
}

static void test_b64_matches_openssl(void **state)
{
	uint8_t raw[64];
	char want[128], got[128];
	uint8_t back[64];

	for(int round = 0; round < 4; round++) {
		/* Rounds: all zero, all 0xff, a ramp, bytes that hit '+' and '/' (0xfb 0xff 0xbf). */
		for(size_t i = 0; i < sizeof(raw); i++)
			raw[i] = round == 0   ? 0
			         : round == 1 ? 0xff
			         : round == 2 ? (uint8_t)(i * 37 + 11)
			                      : "\xfb\xff\xbf"[i % 3];
		for(size_t n = 0; n <= 40; n++) {
			int m = EVP_EncodeBlock((unsigned char *)want, raw, (int)n);
			memset(got, 'X', sizeof(got));
			assert_int_equal(mqs_b64_encode(raw, n, got, false), m);
			assert_int_equal(mqs_b64_len(n, false), m);
			assert_string_equal(got, want);

			size_t um = url_reference(raw, n, want);
			memset(got, 'X', sizeof(got));
			assert_int_equal(mqs_b64_encode(raw, n, got, true), um);
			assert_int_equal(mqs_b64_len(n, true), um);
			assert_string_equal(got, want);
			assert_null(strpbrk(got, "+/="));

			memset(back, 0xaa, sizeof(back));
			assert_int_equal(mqs_b64url_decode(got, um, back, n), n); /* cap exactly n */
			assert_memory_equal(back, raw, n);
			if(n > 0) assert_int_equal(mqs_b64url_decode(got, um, back, n - 1), -1); /* too long */
		}
	}
}

static void test_b64_known(void **state)
{
	char out[64];
	uint8_t b[64];

	assert_int_equal(mqs_b64_encode("", 0, out, false), 0);
	assert_string_equal(out, "");
	assert_int_equal(mqs_b64_encode("", 0, out, true), 0);
	assert_string_equal(out, "");
	mqs_b64_encode("f", 1, out, false);
	assert_string_equal(out, "Zg==");
	mqs_b64_encode("fo", 2, out, false);
	assert_string_equal(out, "Zm8=");
	mqs_b64_encode("foobar", 6, out, false);
	assert_string_equal(out, "Zm9vYmFy");
	mqs_b64_encode("f", 1, out, true);
	assert_string_equal(out, "Zg");
	mqs_b64_encode("a\0b", 3, out, false); /* NUL bytes are data */
	assert_string_equal(out, "YQBi");
	mqs_b64_encode("\xc3\x28", 2, out, false); /* invalid UTF-8 */
	assert_string_equal(out, "wyg=");
	/* A group id (syncd/groups.c): 12 bytes give 16 characters. */
	assert_int_equal(mqs_b64_len(12, true), 16);
	assert_int_equal(mqs_b64_len(32, true), 43); /* tokens */

	assert_int_equal(mqs_b64url_decode("", 0, b, 0), 0);
	assert_int_equal(mqs_b64url_decode("Zm9vYmFy", 8, b, sizeof(b)), 6);
	assert_memory_equal(b, "foobar", 6);
	assert_int_equal(mqs_b64url_decode("Zm9vYmFyX", 9, b, sizeof(b)), -1); /* 4k+1 */
	assert_int_equal(mqs_b64url_decode("Zg==", 4, b, sizeof(b)), -1);      /* no padding */
	assert_int_equal(mqs_b64url_decode("Zm+v", 4, b, sizeof(b)), -1);      /* standard alphabet */
	assert_int_equal(mqs_b64url_decode("Zm/v", 4, b, sizeof(b)), -1);
	assert_int_equal(mqs_b64url_decode("Zm v", 4, b, sizeof(b)), -1);
	assert_int_equal(mqs_b64url_decode("Zm\0v", 4, b, sizeof(b)), -1);
	assert_int_equal(mqs_b64url_decode("-_-_", 4, b, sizeof(b)), 3);
	assert_memory_equal(b, "\xfb\xff\xbf", 3);
	/* Length-delimited: the rest of the string is not read. */
	assert_int_equal(mqs_b64url_decode("Zm9v!!!", 4, b, sizeof(b)), 3);
	/* Unused trailing bits are ignored, as EVP_DecodeBlock does. */
	assert_int_equal(mqs_b64url_decode("Zh", 2, b, sizeof(b)), 1);
	assert_int_equal(b[0], 'f');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_be),
	        cmocka_unit_test(test_b64_matches_openssl),
	        cmocka_unit_test(test_b64_known),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
