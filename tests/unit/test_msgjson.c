/* Unit tests for common/msgjson: the SPEC 5.1 message object, pinned byte for byte to what
 * mqsyncd's msg_write (syncd/messages.c) wrote before it moved here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "msgjson.h"

static char *render(const struct mqs_msg_view *m)
{
	static char out[4096];
	struct jsonw w = {0};

	mqs_msgjson_write(&w, m);
	assert_false(w.oom);
	assert_int_equal(strlen(w.s), w.len);
	snprintf(out, sizeof(out), "%s", w.s);
	/* Always valid JSON. */
	json_error_t err;
	json_t *o = json_loadb(w.s, w.len, JSON_ALLOW_NUL, &err);
	assert_non_null(o);
	json_decref(o);
	jsonw_free(&w);
	return out;
}

/* A view of NUL-terminated strings (cid NULL: absent). */
static struct mqs_msg_view view(int64_t id, int64_t seq, const char *group, const char *sender, const char *ts,
                                const void *payload, size_t payload_len, const char *cid)
{
	return (struct mqs_msg_view){.id = id,
	                             .seq = seq,
	                             .group = group,
	                             .group_len = strlen(group),
	                             .sender = sender,
	                             .sender_len = strlen(sender),
	                             .ts = ts,
	                             .ts_len = strlen(ts),
	                             .payload = payload,
	                             .payload_len = payload_len,
	                             .cid = cid,
	                             .cid_len = cid ? strlen(cid) : 0};
}

static void test_utf8_with_cid(void **state)
{
	struct mqs_msg_view m =
	        view(17, 3, "g1", "alice", "2026-01-02T03:04:05.678Z", "hi \"there\" \\ caf\xc3\xa9\n", 19, "c-1");
	assert_string_equal(render(&m), "{\"id\":17,\"group\":\"g1\",\"seq\":3,\"sender\":\"alice\","
	                                "\"ts\":\"2026-01-02T03:04:05.678Z\",\"payload\":\"hi \\\"there\\\" \\\\ "
	                                "caf\xc3\xa9\\n\",\"encoding\":\"utf8\",\"cid\":\"c-1\"}");
}

static void test_binary_no_cid(void **state)
{
	struct mqs_msg_view m = {.id = 9223372036854775807,
	                         .seq = 1,
	                         .group = "null",
	                         .group_len = 4,
	                         .sender = "bobXXX",
	                         .sender_len = 3,
	                         .ts = "2026-01-02T03:04:05.000Z",
	                         .ts_len = 24,
	                         .payload = "\xff\x00\x01\xc3\x28",
	                         .payload_len = 5};
	assert_string_equal(render(&m), "{\"id\":9223372036854775807,\"group\":\"null\",\"seq\":1,\"sender\":\"bob\","
	                                "\"ts\":\"2026-01-02T03:04:05.000Z\",\"payload\":\"/wABwyg=\","
	                                "\"encoding\":\"base64\"}");
}

static void test_empty_and_nul(void **state)
{
	struct mqs_msg_view m = view(1, 0, "g", "u", "t", NULL, 0, "");
	/* An empty payload is valid UTF-8; an empty cid is present (cid == NULL is absent). */
	assert_string_equal(render(&m), "{\"id\":1,\"group\":\"g\",\"seq\":0,\"sender\":\"u\",\"ts\":\"t\","
	                                "\"payload\":\"\",\"encoding\":\"utf8\",\"cid\":\"\"}");
	/* A NUL byte is valid UTF-8 and is escaped. */
	m.payload = "a\0b\x1f";
	m.payload_len = 4;
	m.cid = NULL;
	assert_string_equal(render(&m), "{\"id\":1,\"group\":\"g\",\"seq\":0,\"sender\":\"u\",\"ts\":\"t\","
	                                "\"payload\":\"a\\u0000b\\u001f\",\"encoding\":\"utf8\"}");
	/* An overlong encoding or a surrogate is not: base64. */
	m.payload = "\xc0\xaf";
	m.payload_len = 2;
	assert_string_equal(render(&m), "{\"id\":1,\"group\":\"g\",\"seq\":0,\"sender\":\"u\",\"ts\":\"t\","
	                                "\"payload\":\"wK8=\",\"encoding\":\"base64\"}");
	m.payload = "\xed\xa0\x80";
	m.payload_len = 3;
	assert_string_equal(render(&m), "{\"id\":1,\"group\":\"g\",\"seq\":0,\"sender\":\"u\",\"ts\":\"t\","
	                                "\"payload\":\"7aCA\",\"encoding\":\"base64\"}");
}

static void test_appends(void **state)
{
	struct jsonw w = {0};
	struct mqs_msg_view m = view(-2, 5, "g", "u", "t", "x", 1, NULL);

	jsonw_lit(&w, "[");
	mqs_msgjson_write(&w, &m);
	jsonw_lit(&w, ",");
	mqs_msgjson_write(&w, &m);
	jsonw_lit(&w, "]");
	assert_string_equal(w.s,
	                    "[{\"id\":-2,\"group\":\"g\",\"seq\":5,\"sender\":\"u\",\"ts\":\"t\",\"payload\":\"x\","
	                    "\"encoding\":\"utf8\"},{\"id\":-2,\"group\":\"g\",\"seq\":5,\"sender\":\"u\","
	                    "\"ts\":\"t\",\"payload\":\"x\",\"encoding\":\"utf8\"}]");
	jsonw_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_utf8_with_cid),
	        cmocka_unit_test(test_binary_no_cid),
	        cmocka_unit_test(test_empty_and_nul),
	        cmocka_unit_test(test_appends),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
