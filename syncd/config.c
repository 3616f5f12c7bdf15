/* config: mqsyncd's settings table: command-line flags and MQSYNC_* environment (SPEC 6). struct
 * syncd_config owns its strings. */
#include "config.h"
#include "conftab.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char syncd_usage[] =
        "usage: mqsyncd [serve] [--listen HOST:PORT] [--db CONNINFO] [--threads N] [--admin-token-file F]\n"
        "                      [--receipts-max-members N]\n"
        "       mqsyncd migrate [--db CONNINFO]\n"
        "       mqsyncd user add ID [--admin] [--db CONNINFO]\n"
        "       mqsyncd --help | --version\n"
        "\n"
        "  --listen HOST:PORT      HTTP address (MQSYNC_LISTEN, default 127.0.0.1:8080)\n"
        "  --db CONNINFO           libpq connection string or URI (MQSYNC_DB)\n"
        "  --threads N             HTTP worker threads and database connections (MQSYNC_THREADS, default 4)\n"
        "  --admin-token-file F    file whose first line is the admin token (MQSYNC_ADMIN_TOKEN_FILE;\n"
        "                          or the token itself in MQSYNC_ADMIN_TOKEN)\n"
        "  --receipts-max-members N  message status lists recipients only for groups of at most N members\n"
        "                          (MQSYNC_RECEIPTS_MAX_MEMBERS, default 1000)\n";

/* The flag is both the name matched and the label error messages use. */
#define OPT(flag, env) flag, flag, env
#define OFF(f)         offsetof(struct syncd_config, f)
static const struct mqs_conf_entry opt_table[] = {
        {OPT("--listen", "MQSYNC_LISTEN"), MQS_CONF_STRING, OFF(listen), "127.0.0.1:8080", 0, 0, NULL},
        {OPT("--db", "MQSYNC_DB"), MQS_CONF_STRING, OFF(db), "", 0, 0, NULL},
        {OPT("--threads", "MQSYNC_THREADS"), MQS_CONF_LONG, OFF(threads), "4", 1, 256, NULL},
        {OPT("--admin-token-file", "MQSYNC_ADMIN_TOKEN_FILE"), MQS_CONF_STRING, OFF(admin_token_file), NULL, 0, 0,
         NULL},
        {OPT("--receipts-max-members", "MQSYNC_RECEIPTS_MAX_MEMBERS"), MQS_CONF_LONG, OFF(receipts_max_members), "1000",
         0, 1000000000, NULL},
};
#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

/* Reads the first line of path into a new string (caller frees). NULL with err set on failure. */
static char *read_token_file(const char *path, char *err, size_t errlen)
{
	char line[512];
	FILE *f = fopen(path, "r");

	if(f == NULL) {
		snprintf(err, errlen, "--admin-token-file: cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	if(fgets(line, sizeof(line), f) == NULL) line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	if(strlen(line) < 16) {
		snprintf(err, errlen, "--admin-token-file: '%s' must hold a token of at least 16 characters", path);
		return NULL;
	}
	char *tok = strdup(line);
	if(tok == NULL) snprintf(err, errlen, "--admin-token-file: out of memory");
	return tok;
}

/* Applies one flag argument (argv[*i], "--name value" or "--name=value"; advances *i past a separate
 * value). False with err on an unknown flag, a missing or an invalid value. */
static bool parse_flag(struct syncd_config *cfg, int argc, char **argv, int *i, char *err, size_t errlen)
{
	const char *a = argv[*i];
	const char *value = NULL;
	const char *eq = strchr(a, '=');
	const struct mqs_conf_entry *e = mqs_conftab_find(opt_table, OPT_COUNT, a, eq ? (size_t)(eq - a) : strlen(a));

	if(e == NULL) {
		snprintf(err, errlen, "unknown option '%s' (see --help)", a);
		return false;
	}
	if(eq)
		value = eq + 1;
	else if(*i + 1 < argc)
		value = argv[++*i];
	if(value == NULL) {
		snprintf(err, errlen, "%s: missing value", e->label);
		return false;
	}
	return mqs_conftab_set(e, cfg, value, err, errlen);
}

/* Maps the positional words to a command (and, for `user add`, *arg). False with err otherwise. */
static bool parse_command(const char *const *positional, int npos, enum syncd_command *cmd, const char **arg, char *err,
                          size_t errlen)
{
	if(npos == 0 || (npos == 1 && !strcmp(positional[0], "serve"))) {
		*cmd = SYNCD_SERVE;
	} else if(npos == 1 && !strcmp(positional[0], "migrate")) {
		*cmd = SYNCD_MIGRATE;
	} else if(npos == 3 && !strcmp(positional[0], "user") && !strcmp(positional[1], "add")) {
		*cmd = SYNCD_USER_ADD;
		*arg = positional[2];
	} else {
		snprintf(err, errlen, "unknown command '%s' (see --help)", positional[0]);
		return false;
	}
	return true;
}

/* Sets cfg->admin_token from --admin-token-file or MQSYNC_ADMIN_TOKEN (the file wins). */
static bool load_admin_token(struct syncd_config *cfg, char *err, size_t errlen)
{
	const char *tok = getenv("MQSYNC_ADMIN_TOKEN");

	if(cfg->admin_token_file != NULL) {
		cfg->admin_token = read_token_file(cfg->admin_token_file, err, errlen);
		return cfg->admin_token != NULL;
	}
	if(tok == NULL || tok[0] == '\0') return true;
	if(strlen(tok) < 16) {
		snprintf(err, errlen, "MQSYNC_ADMIN_TOKEN: must be at least 16 characters");
		return false;
	}
	cfg->admin_token = strdup(tok);
	if(cfg->admin_token == NULL) {
		snprintf(err, errlen, "MQSYNC_ADMIN_TOKEN: out of memory");
		return false;
	}
	return true;
}

bool syncd_config_parse(struct syncd_config *cfg, int argc, char **argv, enum syncd_command *cmd, const char **arg,
                        char *err, size_t errlen)
{
	const char *positional[3] = {NULL, NULL, NULL};
	int npos = 0;

	memset(cfg, 0, sizeof(*cfg));
	*cmd = SYNCD_SERVE;
	*arg = NULL;
	if(!mqs_conftab_defaults(opt_table, OPT_COUNT, cfg, err, errlen)) return false;
	for(int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if(!strcmp(a, "--help") || !strcmp(a, "-h")) {
			*cmd = SYNCD_HELP;
			return true;
		}
		if(!strcmp(a, "--version")) {
			*cmd = SYNCD_VERSION;
			return true;
		}
		if(!strcmp(a, "--admin")) {
			cfg->admin = true;
		} else if(a[0] == '-') {
			if(!parse_flag(cfg, argc, argv, &i, err, errlen)) return false;
		} else if(npos == 3) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
			return false;
		} else {
			positional[npos++] = a;
		}
	}
	if(!parse_command(positional, npos, cmd, arg, err, errlen)) return false;
	if(cfg->admin && *cmd != SYNCD_USER_ADD) {
		snprintf(err, errlen, "--admin only goes with 'user add'");
		return false;
	}
	if(!load_admin_token(cfg, err, errlen)) return false;
	char host[256];
	unsigned short port;
	if(!syncd_config_listen(cfg, host, sizeof(host), &port)) {
		snprintf(err, errlen, "--listen: expected HOST:PORT, got '%s'", cfg->listen);
		return false;
	}
	return true;
}

bool syncd_config_listen(const struct syncd_config *cfg, char *host, size_t hostlen, unsigned short *port)
{
	const char *colon = strrchr(cfg->listen, ':');
	if(colon == NULL || colon == cfg->listen || (size_t)(colon - cfg->listen) >= hostlen) return false;
	int64_t p;
	if(!mqs_parse_int(colon + 1, 1, 65535, &p)) return false;
	memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
	host[colon - cfg->listen] = '\0';
	*port = (unsigned short)p;
	return true;
}

void syncd_config_free(struct syncd_config *cfg)
{
	mqs_conftab_free(opt_table, OPT_COUNT, cfg);
	free(cfg->admin_token);
	memset(cfg, 0, sizeof(*cfg));
}
