/* fuzz_jsonw: jsonw_utf8_valid and jsonw_str (common/jsonw.c) on any bytes: the quoted string jsonw
 * writes is accepted by jansson exactly when jsonw_utf8_valid says the bytes are UTF-8, and then reads
 * back as the same bytes; jsonw_int and jsonw_base64 read back too. */
#include <jansson.h>
#include <openssl/evp.h>

#include "fuzz.h"
#include "jsonw.h"

static void check_str(const uint8_t *data, size_t size)
{
	struct jsonw w = {0};
	json_error_t jerr;
	json_t *v;
	bool valid = jsonw_utf8_valid((const char *)data, size);

	jsonw_str(&w, (const char *)data, size);
	FUZZ_CHECK(!w.oom && w.s != NULL && strlen(w.s) == w.len);
	for(size_t i = 0; i < w.len; i++) FUZZ_CHECK((unsigned char)w.s[i] >= 0x20);
	v = json_loadb(w.s, w.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
	FUZZ_CHECK((v != NULL) == valid);
	if(v != NULL) {
		FUZZ_CHECK(json_is_string(v) && json_string_length(v) == size);
		FUZZ_CHECK(size == 0 || memcmp(json_string_value(v), data, size) == 0);
	}
	json_decref(v);
	jsonw_free(&w);
}

static void check_int_b64(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct jsonw w = {0};
	json_error_t jerr;
	int64_t n = (int64_t)fuzz_u64(&in);
	json_t *v;

	jsonw_lit(&w, "[");
	jsonw_int(&w, n);
	jsonw_raw(&w, ",", 1);
	jsonw_base64(&w, data, size);
	jsonw_lit(&w, "]");
	FUZZ_CHECK(!w.oom);
	v = json_loadb(w.s, w.len, 0, &jerr);
	FUZZ_CHECK(v != NULL && json_is_array(v) && json_array_size(v) == 2);
	FUZZ_CHECK(json_integer_value(json_array_get(v, 0)) == n);
	const char *b64 = json_string_value(json_array_get(v, 1));
	size_t blen = json_string_length(json_array_get(v, 1));
	unsigned char *back = malloc(blen / 4 * 3 + 1);
	FUZZ_CHECK(b64 != NULL && back != NULL && blen % 4 == 0);
	int m = EVP_DecodeBlock(back, (const unsigned char *)b64, (int)blen);
	size_t pad = blen >= 2 && b64[blen - 2] == '=' ? 2 : blen >= 1 && b64[blen - 1] == '=' ? 1 : 0;
	FUZZ_CHECK(m >= 0 && (size_t)m - pad == size && (size == 0 || memcmp(back, data, size) == 0));
	free(back);
	json_decref(v);
	jsonw_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_str(data, size);
	check_int_b64(data, size);
	return 0;
}
