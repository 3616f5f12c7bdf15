/* fuzz_msgjson: mqs_msgjson_write (common/msgjson.c) on messages built from the input: the object
 * parses with jansson, has exactly the SPEC 5.1 keys, and every field reads back as given (the payload
 * through its "encoding"). */
#include <jansson.h>
#include <openssl/evp.h>

#include "fuzz.h"
#include "msgjson.h"

/* Takes a field of up to 63 bytes (its length from the input). */
static const char *take(struct fuzz_in *in, size_t *n)
{
	return (const char *)fuzz_bytes(in, fuzz_u8(in) % 64, n);
}

static bool same(json_t *v, const void *s, size_t n)
{
	return json_is_string(v) && json_string_length(v) == n && (n == 0 || memcmp(json_string_value(v), s, n) == 0);
}

/* The payload as written: the bytes when "utf8", the standard base64 of them when "base64". */
static void check_payload(json_t *o, const struct mqs_msg_view *m)
{
	const char *enc = json_string_value(json_object_get(o, "encoding"));
	json_t *p = json_object_get(o, "payload");
	bool utf8 = jsonw_utf8_valid(m->payload_len ? m->payload : "", m->payload_len);

	FUZZ_CHECK(enc != NULL && strcmp(enc, utf8 ? "utf8" : "base64") == 0);
	if(utf8) {
		FUZZ_CHECK(same(p, m->payload, m->payload_len));
		return;
	}
	size_t blen = json_string_length(p);
	const char *b64 = json_string_value(p);
	unsigned char *back = malloc(blen / 4 * 3 + 1);
	FUZZ_CHECK(b64 != NULL && back != NULL && blen % 4 == 0);
	int n = EVP_DecodeBlock(back, (const unsigned char *)b64, (int)blen);
	size_t pad = blen >= 2 && b64[blen - 2] == '=' ? 2 : blen >= 1 && b64[blen - 1] == '=' ? 1 : 0;
	FUZZ_CHECK(n >= 0 && (size_t)n - pad == m->payload_len && memcmp(back, m->payload, m->payload_len) == 0);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	struct mqs_msg_view m;
	struct jsonw w = {0};
	json_error_t jerr;
	json_t *o;

	memset(&m, 0, sizeof(m));
	m.id = (int64_t)fuzz_u64(&in);
	m.seq = (int64_t)fuzz_u64(&in);
	uint8_t flags = fuzz_u8(&in);
	m.group = take(&in, &m.group_len);
	m.sender = take(&in, &m.sender_len);
	m.ts = take(&in, &m.ts_len);
	if(flags & 1) m.cid = take(&in, &m.cid_len);
	m.payload = fuzz_bytes(&in, in.n, &m.payload_len);
	if((flags & 2) && m.payload_len == 0) m.payload = NULL;

	mqs_msgjson_write(&w, &m);
	FUZZ_CHECK(!w.oom && w.s != NULL && strlen(w.s) == w.len);
	/* group, sender, ts and cid are UTF-8 by contract (ids, timestamps, MQTT strings). */
	if(!jsonw_utf8_valid(m.group, m.group_len) || !jsonw_utf8_valid(m.sender, m.sender_len) ||
	   !jsonw_utf8_valid(m.ts, m.ts_len) || (m.cid && !jsonw_utf8_valid(m.cid, m.cid_len))) {
		jsonw_free(&w);
		return 0;
	}
	o = json_loadb(w.s, w.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	FUZZ_CHECK(o != NULL && json_is_object(o));
	FUZZ_CHECK(json_object_size(o) == (m.cid ? 8u : 7u));
	FUZZ_CHECK(json_integer_value(json_object_get(o, "id")) == m.id && json_is_integer(json_object_get(o, "id")));
	FUZZ_CHECK(json_integer_value(json_object_get(o, "seq")) == m.seq &&
	           json_is_integer(json_object_get(o, "seq")));
	FUZZ_CHECK(same(json_object_get(o, "group"), m.group, m.group_len));
	FUZZ_CHECK(same(json_object_get(o, "sender"), m.sender, m.sender_len));
	FUZZ_CHECK(same(json_object_get(o, "ts"), m.ts, m.ts_len));
	if(m.cid) FUZZ_CHECK(same(json_object_get(o, "cid"), m.cid, m.cid_len));
	check_payload(o, &m);
	json_decref(o);
	jsonw_free(&w);
	return 0;
}
