/* fuzz_codec: mqs_b64url_decode (common/codec.c) on any characters, with mqs_b64_encode: what decodes
 * re-encodes to the same text (but for the ignored low bits of the last character), bytes round-trip,
 * and standard base64 is exactly OpenSSL's EVP_EncodeBlock. */
#include <openssl/evp.h>

#include "codec.h"
#include "fuzz.h"

static bool url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void check_decode(const char *s, size_t n)
{
	uint8_t *out = malloc(n + 1);
	bool want = n % 4 != 1;
	long r;

	FUZZ_CHECK(out != NULL);
	for(size_t i = 0; i < n && want; i++) want = url_char(s[i]);
	r = mqs_b64url_decode(s, n, out, n);
	FUZZ_CHECK((r >= 0) == want);
	if(r >= 0) {
		size_t len = (size_t)r;
		char *t = malloc(mqs_b64_len(len, true) + 1);
		uint8_t *again = malloc(len + 1);

		FUZZ_CHECK(t != NULL && again != NULL);
		FUZZ_CHECK(len == n * 6 / 8);
		FUZZ_CHECK(mqs_b64_encode(out, len, t, true) == n && strlen(t) == n);
		FUZZ_CHECK(n == 0 || memcmp(t, s, n - 1) == 0);
		FUZZ_CHECK(mqs_b64url_decode(t, n, again, len) == r);
		FUZZ_CHECK(len == 0 || memcmp(again, out, len) == 0);
		/* One byte too little room is refused. */
		if(len > 0) FUZZ_CHECK(mqs_b64url_decode(s, n, again, len - 1) == -1);
		free(again);
		free(t);
	}
	free(out);
}

static void check_encode(const uint8_t *data, size_t size)
{
	size_t ul = mqs_b64_len(size, true), sl = mqs_b64_len(size, false);
	char *u = malloc(ul + 1), *std = malloc(sl + 1), *ossl = malloc(sl + 1);
	uint8_t *back = malloc(size + 1);

	FUZZ_CHECK(u != NULL && std != NULL && ossl != NULL && back != NULL);
	FUZZ_CHECK(mqs_b64_encode(data, size, u, true) == ul && strlen(u) == ul);
	FUZZ_CHECK(mqs_b64url_decode(u, ul, back, size) == (long)size);
	FUZZ_CHECK(size == 0 || memcmp(back, data, size) == 0);
	FUZZ_CHECK(mqs_b64_encode(data, size, std, false) == sl);
	FUZZ_CHECK(EVP_EncodeBlock((unsigned char *)ossl, data, (int)size) == (int)sl);
	FUZZ_CHECK(memcmp(std, ossl, sl + 1) == 0);
	for(size_t i = 0; i < ul; i++) FUZZ_CHECK(u[i] == (std[i] == '+' ? '-' : std[i] == '/' ? '_' : std[i]));
	free(back);
	free(ossl);
	free(std);
	free(u);
}

static void check_be(const uint8_t *data, size_t size)
{
	uint8_t b[8] = {0}, o[8];

	memcpy(b, data, size < 8 ? size : 8);
	mqs_be64_put(o, mqs_be64_get(b));
	FUZZ_CHECK(memcmp(o, b, 8) == 0);
	mqs_be32_put(o, mqs_be32_get(b));
	FUZZ_CHECK(memcmp(o, b, 4) == 0);
	FUZZ_CHECK(mqs_be32_get(b) == ((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_decode((const char *)data, size);
	check_encode(data, size);
	check_be(data, size);
	return 0;
}
