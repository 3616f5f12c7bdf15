/* config: mqsyncd's settings table: command-line flags and MQSYNC_* environment (SPEC 6). */
#include "config.h"
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

enum opt_type { OPT_STRING, OPT_LONG };

struct opt_def {
	const char *flag;
	const char *env;
	enum opt_type type;
	size_t offset;
	const char *def;
	long min, max;
};

#define OFF(f) offsetof(struct syncd_config, f)
static const struct opt_def opt_table[] = {
        {"--listen", "MQSYNC_LISTEN", OPT_STRING, OFF(listen), "127.0.0.1:8080", 0, 0},
        {"--db", "MQSYNC_DB", OPT_STRING, OFF(db), "", 0, 0},
        {"--threads", "MQSYNC_THREADS", OPT_LONG, OFF(threads), "4", 1, 256},
        {"--admin-token-file", "MQSYNC_ADMIN_TOKEN_FILE", OPT_STRING, OFF(admin_token_file), NULL, 0, 0},
        {"--receipts-max-members", "MQSYNC_RECEIPTS_MAX_MEMBERS", OPT_LONG, OFF(receipts_max_members), "1000", 0,
         1000000000},
};
#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

static bool apply(struct syncd_config *cfg, const struct opt_def *d, const char *value, char *err, size_t errlen)
{
	char *base = (char *)cfg;

	if(d->type == OPT_STRING) {
		char **dst = (char **)(base + d->offset);
		char *copy = strdup(value);
		if(copy == NULL) {
			snprintf(err, errlen, "%s: out of memory", d->flag);
			return false;
		}
		free(*dst);
		*dst = copy;
		return true;
	}
	if(!mqs_parse_long(value, d->min, d->max, (long *)(base + d->offset))) {
		snprintf(err, errlen, "%s: expected an integer from %ld to %ld, got '%s'", d->flag, d->min, d->max,
		         value);
		return false;
	}
	return true;
}

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
	return strdup(line);
}

bool syncd_config_parse(struct syncd_config *cfg, int argc, char **argv, enum syncd_command *cmd, const char **arg,
                        char *err, size_t errlen)
{
	const char *positional[3] = {NULL, NULL, NULL};
	int npos = 0;

	memset(cfg, 0, sizeof(*cfg));
	*cmd = SYNCD_SERVE;
	*arg = NULL;
	for(size_t i = 0; i < OPT_COUNT; i++) {
		const char *v = getenv(opt_table[i].env);
		if(v == NULL || v[0] == '\0') v = opt_table[i].def;
		if(v != NULL && !apply(cfg, &opt_table[i], v, err, errlen)) return false;
	}
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
			continue;
		}
		if(a[0] == '-') {
			size_t j;
			const char *value = NULL;
			const char *eq = strchr(a, '=');
			size_t flen = eq ? (size_t)(eq - a) : strlen(a);
			for(j = 0; j < OPT_COUNT; j++) {
				if(strlen(opt_table[j].flag) == flen && !strncmp(a, opt_table[j].flag, flen)) break;
			}
			if(j == OPT_COUNT) {
				snprintf(err, errlen, "unknown option '%s' (see --help)", a);
				return false;
			}
			if(eq)
				value = eq + 1;
			else if(i + 1 < argc)
				value = argv[++i];
			if(value == NULL) {
				snprintf(err, errlen, "%s: missing value", opt_table[j].flag);
				return false;
			}
			if(!apply(cfg, &opt_table[j], value, err, errlen)) return false;
			continue;
		}
		if(npos == 3) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
			return false;
		}
		positional[npos++] = a;
	}
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
	if(cfg->admin && *cmd != SYNCD_USER_ADD) {
		snprintf(err, errlen, "--admin only goes with 'user add'");
		return false;
	}
	const char *tok = getenv("MQSYNC_ADMIN_TOKEN");
	if(cfg->admin_token_file != NULL) {
		cfg->admin_token = read_token_file(cfg->admin_token_file, err, errlen);
		if(cfg->admin_token == NULL) return false;
	} else if(tok != NULL && tok[0] != '\0') {
		if(strlen(tok) < 16) {
			snprintf(err, errlen, "MQSYNC_ADMIN_TOKEN: must be at least 16 characters");
			return false;
		}
		cfg->admin_token = strdup(tok);
	}
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
	long p;
	if(!mqs_parse_long(colon + 1, 1, 65535, &p)) return false;
	memcpy(host, cfg->listen, (size_t)(colon - cfg->listen));
	host[colon - cfg->listen] = '\0';
	*port = (unsigned short)p;
	return true;
}

void syncd_config_free(struct syncd_config *cfg)
{
	free(cfg->listen);
	free(cfg->db);
	free(cfg->admin_token_file);
	free(cfg->admin_token);
	memset(cfg, 0, sizeof(*cfg));
}
