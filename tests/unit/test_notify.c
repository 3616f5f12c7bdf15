/* Unit tests for common/notify: the payloads of sql/0001_init.sql's NOTIFY triggers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "notify.h"

static void test_msg(void **state)
{
	char gid[MQS_ID_MAX + 1], id64[MQS_ID_MAX + 1], id65[MQS_ID_MAX + 2], buf[200];
	int64_t seq = -7;

	assert_true(mqs_notify_msg_parse("g1:42", gid, &seq));
	assert_string_equal(gid, "g1");
	assert_int_equal(seq, 42);
	assert_true(mqs_notify_msg_parse("A-b_9:0", gid, &seq));
	assert_string_equal(gid, "A-b_9");
	assert_int_equal(seq, 0);
	assert_true(mqs_notify_msg_parse("g:9223372036854775807", gid, &seq));
	assert_true(seq == INT64_MAX);

	memset(id64, 'x', 64);
	id64[64] = '\0';
	snprintf(buf, sizeof(buf), "%s:5", id64);
	assert_true(mqs_notify_msg_parse(buf, gid, &seq));
	assert_string_equal(gid, id64);
	memset(id65, 'y', 65);
	id65[65] = '\0';
	snprintf(buf, sizeof(buf), "%s:5", id65);
	assert_false(mqs_notify_msg_parse(buf, gid, &seq)); /* gid too long */

	assert_false(mqs_notify_msg_parse(NULL, gid, &seq));
	assert_false(mqs_notify_msg_parse("", gid, &seq));
	assert_false(mqs_notify_msg_parse("g42", gid, &seq));   /* missing colon */
	assert_false(mqs_notify_msg_parse(":42", gid, &seq));   /* empty gid */
	assert_false(mqs_notify_msg_parse("g/x:1", gid, &seq)); /* invalid id char */
	assert_false(mqs_notify_msg_parse("g x:1", gid, &seq));
	assert_false(mqs_notify_msg_parse("caf\xc3\xa9:1", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:", gid, &seq)); /* empty seq */
	assert_false(mqs_notify_msg_parse("g:abc", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:12x", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:-1", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:+1", gid, &seq));
	assert_false(mqs_notify_msg_parse("g: 1", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:9223372036854775808", gid, &seq)); /* overflow */
	assert_false(mqs_notify_msg_parse("g:99999999999999999999", gid, &seq));
	assert_false(mqs_notify_msg_parse("g:1:2", gid, &seq));
	assert_false(mqs_notify_msg_parse("a:b:2", gid, &seq));
}

static void test_state(void **state)
{
	char a[MQS_ID_MAX + 1], b[MQS_ID_MAX + 1], id64[MQS_ID_MAX + 1], buf[300];

	assert_int_equal(mqs_notify_state_parse("user:alice", a, b), MQS_NOTIFY_USER);
	assert_string_equal(a, "alice");
	assert_int_equal(mqs_notify_state_parse("group:g-1", a, b), MQS_NOTIFY_GROUP);
	assert_string_equal(a, "g-1");
	assert_int_equal(mqs_notify_state_parse("member:g1:bob", a, b), MQS_NOTIFY_MEMBER);
	assert_string_equal(a, "g1");
	assert_string_equal(b, "bob");
	assert_int_equal(mqs_notify_state_parse("user:null", a, b), MQS_NOTIFY_USER);
	assert_string_equal(a, "null");

	memset(id64, 'x', 64);
	id64[64] = '\0';
	snprintf(buf, sizeof(buf), "member:%s:%s", id64, id64);
	assert_int_equal(mqs_notify_state_parse(buf, a, b), MQS_NOTIFY_MEMBER);
	assert_string_equal(a, id64);
	assert_string_equal(b, id64);
	snprintf(buf, sizeof(buf), "member:%sx:u", id64);
	assert_int_equal(mqs_notify_state_parse(buf, a, b), MQS_NOTIFY_BAD);
	snprintf(buf, sizeof(buf), "user:%sx", id64);
	assert_int_equal(mqs_notify_state_parse(buf, a, b), MQS_NOTIFY_BAD);

	assert_int_equal(mqs_notify_state_parse(NULL, a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("user:", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("user", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("user:a:b", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("user:a b", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("group:", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("group:g/1", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("member:g1", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("member:g1:", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("member::u", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("member:g1:u:v", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("users:alice", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("USER:alice", a, b), MQS_NOTIFY_BAD);
	assert_int_equal(mqs_notify_state_parse("token:alice", a, b), MQS_NOTIFY_BAD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_msg),
	        cmocka_unit_test(test_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
