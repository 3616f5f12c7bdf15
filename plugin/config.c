/* config: the plugin's plugin_opt_* table, parsed and validated at init (SPEC 6). */
#include "config.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum opt_type { OPT_STRING, OPT_BOOL, OPT_LONG, OPT_ENUM };

struct opt_def {
	const char *name;
	enum opt_type type;
	size_t offset;
	const char *def;            /* default as text; NULL = required (strings) or computed */
	long min, max;              /* OPT_LONG bounds */
	const char *const *choices; /* OPT_ENUM, NULL-terminated; the index is stored */
};

static const char *const envelope_choices[] = {"properties", "json", NULL};
static const char *const other_choices[] = {"defer", "allow", "deny", NULL};

#define OFF(f) offsetof(struct mqs_config, f)
static const struct opt_def opt_table[] = {
        {"conninfo", OPT_STRING, OFF(conninfo), NULL, 0, 0, NULL},
        {"node", OPT_STRING, OFF(node), "", 0, 0, NULL},
        {"spool_dir", OPT_STRING, OFF(spool_dir), "/var/lib/mqsync", 0, 0, NULL},
        {"auth", OPT_BOOL, OFF(auth), "true", 0, 0, NULL},
        {"envelope", OPT_ENUM, OFF(envelope), "properties", 0, 0, envelope_choices},
        {"other_topics", OPT_ENUM, OFF(other_topics), "defer", 0, 0, other_choices},
        {"max_payload", OPT_LONG, OFF(max_payload), "262144", 1, 268435455, NULL},
        {"receipts_max_members", OPT_LONG, OFF(receipts_max_members), "1000", 0, 100000000, NULL},
        {"batch_max", OPT_LONG, OFF(batch_max), "1000", 1, 100000, NULL},
        {"spool_max_bytes", OPT_LONG, OFF(spool_max_bytes), "268435456", 4096, LONG_MAX, NULL},
        {"spool_fsync", OPT_BOOL, OFF(spool_fsync), "false", 0, 0, NULL},
        {"reconnect_max_ms", OPT_LONG, OFF(reconnect_max_ms), "5000", 10, 600000, NULL},
        {"presence_interval_s", OPT_LONG, OFF(presence_interval_s), "30", 1, 30, NULL},
        {"wake_address", OPT_STRING, OFF(wake_address), "127.0.0.1:1883", 0, 0, NULL},
};
#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

static bool parse_bool(const char *v, bool *out)
{
	if(!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes") || !strcasecmp(v, "on")) {
		*out = true;
		return true;
	}
	if(!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no") || !strcasecmp(v, "off")) {
		*out = false;
		return true;
	}
	return false;
}

static bool node_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
	       c == '.';
}

static bool node_valid(const char *s)
{
	size_t n = strlen(s);
	if(n == 0 || n > 64) return false;
	for(size_t i = 0; i < n; i++) {
		if(!node_char_ok(s[i])) return false;
	}
	return true;
}

/* Applies one textual value to the field described by d. */
static bool apply(struct mqs_config *cfg, const struct opt_def *d, const char *value, char *err, size_t errlen)
{
	char *base = (char *)cfg;

	switch(d->type) {
	case OPT_STRING: {
		char **dst = (char **)(base + d->offset);
		char *copy = strdup(value);
		if(copy == NULL) {
			snprintf(err, errlen, "plugin_opt_%s: out of memory", d->name);
			return false;
		}
		free(*dst);
		*dst = copy;
		return true;
	}
	case OPT_BOOL:
		if(!parse_bool(value, (bool *)(base + d->offset))) {
			snprintf(err, errlen, "plugin_opt_%s: expected true or false, got '%s'", d->name, value);
			return false;
		}
		return true;
	case OPT_LONG: {
		if(!mqs_parse_long(value, d->min, d->max, (long *)(base + d->offset))) {
			snprintf(err, errlen, "plugin_opt_%s: expected an integer from %ld to %ld, got '%s'", d->name,
			         d->min, d->max, value);
			return false;
		}
		return true;
	}
	case OPT_ENUM:
		for(int i = 0; d->choices[i] != NULL; i++) {
			if(!strcmp(value, d->choices[i])) {
				*(int *)(base + d->offset) = i;
				return true;
			}
		}
		snprintf(err, errlen, "plugin_opt_%s: invalid value '%s'", d->name, value);
		return false;
	}
	return false;
}

bool mqs_config_parse(struct mqs_config *cfg, const struct mosquitto_opt *opts, int count, char *err, size_t errlen)
{
	bool seen[OPT_COUNT] = {false};

	memset(cfg, 0, sizeof(*cfg));
	for(size_t i = 0; i < OPT_COUNT; i++) {
		if(opt_table[i].def != NULL && !apply(cfg, &opt_table[i], opt_table[i].def, err, errlen)) goto fail;
	}
	for(int i = 0; i < count; i++) {
		const char *key = opts[i].key;
		const char *value = opts[i].value ? opts[i].value : "";
		size_t j;
		for(j = 0; j < OPT_COUNT; j++) {
			if(!strcmp(key, opt_table[j].name)) break;
		}
		if(j == OPT_COUNT) {
			snprintf(err, errlen, "plugin_opt_%s: unknown option", key);
			goto fail;
		}
		if(seen[j]) {
			snprintf(err, errlen, "plugin_opt_%s: given more than once", key);
			goto fail;
		}
		seen[j] = true;
		if(value[0] == '\0') {
			snprintf(err, errlen, "plugin_opt_%s: empty value", key);
			goto fail;
		}
		if(!apply(cfg, &opt_table[j], value, err, errlen)) goto fail;
	}
	if(cfg->conninfo == NULL) {
		snprintf(err, errlen, "plugin_opt_conninfo: required (a libpq connection string)");
		goto fail;
	}
	if(cfg->node[0] == '\0') {
		char host[256];
		if(gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "mqsync");
		host[sizeof(host) - 1] = '\0';
		for(char *p = host; *p; p++) {
			if(!node_char_ok(*p)) *p = '-';
		}
		host[64] = '\0';
		free(cfg->node);
		cfg->node = strdup(host);
		if(cfg->node == NULL) {
			snprintf(err, errlen, "plugin_opt_node: out of memory");
			goto fail;
		}
	} else if(!node_valid(cfg->node)) {
		snprintf(err, errlen, "plugin_opt_node: '%s' must match [A-Za-z0-9_.-]{1,64}", cfg->node);
		goto fail;
	}
	if(cfg->spool_dir[0] != '/') {
		snprintf(err, errlen, "plugin_opt_spool_dir: must be an absolute path, got '%s'", cfg->spool_dir);
		goto fail;
	}
	return true;

fail:
	mqs_config_free(cfg);
	return false;
}

const char *mqs_config_describe(const struct mqs_config *cfg, char *buf, size_t buflen)
{
	snprintf(buf, buflen,
	         "node=%s spool_dir=%s auth=%s envelope=%s other_topics=%s max_payload=%ld receipts_max_members=%ld "
	         "batch_max=%ld spool_max_bytes=%ld spool_fsync=%s reconnect_max_ms=%ld presence_interval_s=%ld "
	         "wake_address=%s",
	         cfg->node, cfg->spool_dir, cfg->auth ? "true" : "false", envelope_choices[cfg->envelope],
	         other_choices[cfg->other_topics], cfg->max_payload, cfg->receipts_max_members, cfg->batch_max,
	         cfg->spool_max_bytes, cfg->spool_fsync ? "true" : "false", cfg->reconnect_max_ms,
	         cfg->presence_interval_s, cfg->wake_address);
	return buf;
}

void mqs_config_free(struct mqs_config *cfg)
{
	free(cfg->conninfo);
	free(cfg->node);
	free(cfg->spool_dir);
	free(cfg->wake_address);
	cfg->conninfo = cfg->node = cfg->spool_dir = cfg->wake_address = NULL;
}
