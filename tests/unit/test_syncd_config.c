/* Unit tests for syncd/config.c: flags, environment, precedence and rejections. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static int parse(struct syncd_config *c, enum syncd_command *cmd, const char **arg, char *err, int n, ...)
{
	char *argv[16];
	va_list ap;

	va_start(ap, n);
	for(int i = 0; i < n; i++) argv[i] = va_arg(ap, char *);
	va_end(ap);
	return syncd_config_parse(c, n, argv, cmd, arg, err, 256);
}

static void test_defaults_and_env(void **state)
{
	struct syncd_config c;
	enum syncd_command cmd;
	const char *arg;
	char err[256];

	unsetenv("MQSYNC_LISTEN");
	unsetenv("MQSYNC_ADMIN_TOKEN");
	setenv("MQSYNC_THREADS", "7", 1);
	assert_true(parse(&c, &cmd, &arg, err, 0));
	assert_int_equal(cmd, SYNCD_SERVE);
	assert_string_equal(c.listen, "127.0.0.1:8080");
	assert_int_equal(c.threads, 7);
	assert_int_equal(c.receipts_max_members, 1000);
	assert_null(c.admin_token);
	syncd_config_free(&c);

	setenv("MQSYNC_RECEIPTS_MAX_MEMBERS", "50", 1);
	assert_true(parse(&c, &cmd, &arg, err, 0));
	assert_int_equal(c.receipts_max_members, 50);
	syncd_config_free(&c);
	assert_true(parse(&c, &cmd, &arg, err, 2, "--receipts-max-members", "7"));
	assert_int_equal(c.receipts_max_members, 7);
	syncd_config_free(&c);
	unsetenv("MQSYNC_RECEIPTS_MAX_MEMBERS");
	assert_false(parse(&c, &cmd, &arg, err, 2, "--receipts-max-members", "-1"));
	assert_non_null(strstr(err, "--receipts-max-members"));
	syncd_config_free(&c);

	/* Flags win over the environment; --flag=value works too. */
	assert_true(parse(&c, &cmd, &arg, err, 3, "serve", "--threads=2", "--listen=127.0.0.1:9"));
	assert_int_equal(c.threads, 2);
	char host[64];
	unsigned short port;
	assert_true(syncd_config_listen(&c, host, sizeof(host), &port));
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 9);
	syncd_config_free(&c);
	unsetenv("MQSYNC_THREADS");

	setenv("MQSYNC_ADMIN_TOKEN", "0123456789abcdefXYZ", 1);
	assert_true(parse(&c, &cmd, &arg, err, 0));
	assert_string_equal(c.admin_token, "0123456789abcdefXYZ");
	syncd_config_free(&c);
	setenv("MQSYNC_ADMIN_TOKEN", "short", 1);
	assert_false(parse(&c, &cmd, &arg, err, 0));
	assert_non_null(strstr(err, "MQSYNC_ADMIN_TOKEN"));
	syncd_config_free(&c);
	unsetenv("MQSYNC_ADMIN_TOKEN");
}

static void test_commands(void **state)
{
	struct syncd_config c;
	enum syncd_command cmd;
	const char *arg;
	char err[256];

	assert_true(parse(&c, &cmd, &arg, err, 1, "migrate"));
	assert_int_equal(cmd, SYNCD_MIGRATE);
	syncd_config_free(&c);
	assert_true(parse(&c, &cmd, &arg, err, 4, "user", "add", "bob", "--admin"));
	assert_int_equal(cmd, SYNCD_USER_ADD);
	assert_string_equal(arg, "bob");
	assert_true(c.admin);
	syncd_config_free(&c);
	assert_true(parse(&c, &cmd, &arg, err, 2, "serve", "--version"));
	assert_int_equal(cmd, SYNCD_VERSION);
	syncd_config_free(&c);
}

static void test_rejections(void **state)
{
	struct syncd_config c;
	enum syncd_command cmd;
	const char *arg;
	char err[256];

	assert_false(parse(&c, &cmd, &arg, err, 1, "--nope"));
	assert_non_null(strstr(err, "--nope"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 1, "--threads"));
	assert_non_null(strstr(err, "--threads: missing value"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--threads", "x"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--threads", "1000"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--listen", "127.0.0.1:0"));
	assert_non_null(strstr(err, "--listen"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--listen", "127.0.0.1:99999"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "migrate", "--admin"));
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "user", "add"));
	syncd_config_free(&c);
}

/* After a failure mid-way cfg holds the defaults and the values set so far; syncd_config_free is
 * the only free (ASan's leak check fails this test otherwise). */
static void test_failure_ownership(void **state)
{
	struct syncd_config c;
	enum syncd_command cmd;
	const char *arg;
	char err[256];

	unsetenv("MQSYNC_ADMIN_TOKEN");
	unsetenv("MQSYNC_THREADS");
	assert_false(parse(&c, &cmd, &arg, err, 6, "--listen", "127.0.0.1:1", "--db=dbname=x", "--threads", "abc",
	                   "--admin-token-file=/nonexistent"));
	assert_string_equal(err, "--threads: expected an integer from 1 to 256, got 'abc'");
	assert_string_equal(c.listen, "127.0.0.1:1");
	assert_string_equal(c.db, "dbname=x");
	assert_int_equal(c.threads, 4);
	assert_null(c.admin_token_file);
	syncd_config_free(&c);
	assert_null(c.listen);
	syncd_config_free(&c); /* twice is harmless */

	/* A string replaced by a flag: the default's copy is freed, not leaked. */
	assert_false(parse(&c, &cmd, &arg, err, 3, "--admin-token-file", "/nonexistent/token", "frobnicate"));
	assert_string_equal(err, "unknown command 'frobnicate' (see --help)");
	assert_string_equal(c.admin_token_file, "/nonexistent/token");
	syncd_config_free(&c);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--admin-token-file", "/nonexistent/token"));
	assert_non_null(strstr(err, "--admin-token-file: cannot open '/nonexistent/token'"));
	assert_null(c.admin_token);
	syncd_config_free(&c);

	/* A bad environment value fails at the defaults step, with the flag's name. */
	setenv("MQSYNC_THREADS", "0", 1);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--db", "x"));
	assert_string_equal(err, "--threads: expected an integer from 1 to 256, got '0'");
	assert_string_equal(c.listen, "127.0.0.1:8080");
	syncd_config_free(&c);
	unsetenv("MQSYNC_THREADS");
}

static void test_token_file(void **state)
{
	struct syncd_config c;
	enum syncd_command cmd;
	const char *arg;
	char err[256], path[] = "/tmp/mqsync-test-token-XXXXXX";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	fputs("0123456789abcdef-file\nsecond line\n", f);
	fclose(f);
	unsetenv("MQSYNC_ADMIN_TOKEN");
	assert_true(parse(&c, &cmd, &arg, err, 2, "--admin-token-file", path));
	assert_string_equal(c.admin_token, "0123456789abcdef-file");
	syncd_config_free(&c);
	/* The file wins over MQSYNC_ADMIN_TOKEN. */
	setenv("MQSYNC_ADMIN_TOKEN", "0123456789abcdef-env", 1);
	setenv("MQSYNC_ADMIN_TOKEN_FILE", path, 1);
	assert_true(parse(&c, &cmd, &arg, err, 0));
	assert_string_equal(c.admin_token, "0123456789abcdef-file");
	syncd_config_free(&c);
	unsetenv("MQSYNC_ADMIN_TOKEN_FILE");
	unsetenv("MQSYNC_ADMIN_TOKEN");
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("short\n", f);
	fclose(f);
	assert_false(parse(&c, &cmd, &arg, err, 2, "--admin-token-file", path));
	assert_non_null(strstr(err, "must hold a token of at least 16 characters"));
	syncd_config_free(&c);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_defaults_and_env), cmocka_unit_test(test_commands),
	        cmocka_unit_test(test_rejections),       cmocka_unit_test(test_failure_ownership),
	        cmocka_unit_test(test_token_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
