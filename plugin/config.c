/* config: the plugin's plugin_opt_* table, parsed and validated at init (SPEC 6). struct mqs_config
 * owns its strings. */
#include "config.h"
#include "conftab.h"

#include <limits.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const envelope_choices[] = {"properties", "json", NULL};
static const char *const other_choices[] = {"defer", "allow", "deny", NULL};

/* name, and the label error messages use. */
#define OPT(n) n, "plugin_opt_" n, NULL
#define OFF(f) offsetof(struct mqs_config, f)
static const struct mqs_conf_entry opt_table[] = {
        {OPT("conninfo"), MQS_CONF_STRING, OFF(conninfo), NULL, 0, 0, NULL}, /* required */
        {OPT("node"), MQS_CONF_STRING, OFF(node), "", 0, 0, NULL},           /* "": the hostname */
        {OPT("spool_dir"), MQS_CONF_STRING, OFF(spool_dir), "/var/lib/mqsync", 0, 0, NULL},
        {OPT("auth"), MQS_CONF_BOOL, OFF(auth), "true", 0, 0, NULL},
        {OPT("envelope"), MQS_CONF_ENUM, OFF(envelope), "properties", 0, 0, envelope_choices},
        {OPT("other_topics"), MQS_CONF_ENUM, OFF(other_topics), "defer", 0, 0, other_choices},
        {OPT("max_payload"), MQS_CONF_LONG, OFF(max_payload), "262144", 1, 268435455, NULL},
        {OPT("receipts_max_members"), MQS_CONF_LONG, OFF(receipts_max_members), "1000", 0, 100000000, NULL},
        {OPT("refusal_log_burst"), MQS_CONF_LONG, OFF(refusal_log_burst), "5", 0, 1000000, NULL},
        {OPT("batch_max"), MQS_CONF_LONG, OFF(batch_max), "1000", 1, 100000, NULL},
        {OPT("spool_max_bytes"), MQS_CONF_LONG, OFF(spool_max_bytes), "268435456", 4096, LONG_MAX, NULL},
        {OPT("spool_fsync"), MQS_CONF_BOOL, OFF(spool_fsync), "false", 0, 0, NULL},
        {OPT("reconnect_max_ms"), MQS_CONF_LONG, OFF(reconnect_max_ms), "5000", 10, 600000, NULL},
        {OPT("presence_interval_s"), MQS_CONF_LONG, OFF(presence_interval_s), "30", 1, 30, NULL},
        {OPT("wake_address"), MQS_CONF_STRING, OFF(wake_address), "127.0.0.1:1883", 0, 0, NULL},
};
#define OPT_COUNT (sizeof(opt_table) / sizeof(opt_table[0]))

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

bool mqs_config_parse(struct mqs_config *cfg, const struct mosquitto_opt *opts, int count, char *err, size_t errlen)
{
	bool seen[OPT_COUNT] = {false};

	memset(cfg, 0, sizeof(*cfg));
	if(!mqs_conftab_defaults(opt_table, OPT_COUNT, cfg, err, errlen)) return false;
	for(int i = 0; i < count; i++) {
		const char *key = opts[i].key;
		const char *value = opts[i].value ? opts[i].value : "";
		const struct mqs_conf_entry *e = mqs_conftab_find(opt_table, OPT_COUNT, key, strlen(key));
		if(e == NULL) {
			snprintf(err, errlen, "plugin_opt_%s: unknown option", key);
			return false;
		}
		if(seen[e - opt_table]) {
			snprintf(err, errlen, "%s: given more than once", e->label);
			return false;
		}
		seen[e - opt_table] = true;
		if(value[0] == '\0') {
			snprintf(err, errlen, "%s: empty value", e->label);
			return false;
		}
		if(!mqs_conftab_set(e, cfg, value, err, errlen)) return false;
	}
	if(cfg->conninfo == NULL) {
		snprintf(err, errlen, "plugin_opt_conninfo: required (a libpq connection string)");
		return false;
	}
	if(cfg->node[0] == '\0') {
		char host[256];
		if(gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "mqsync");
		host[sizeof(host) - 1] = '\0';
		for(char *p = host; *p; p++) {
			if(!node_char_ok(*p)) *p = '-';
		}
		host[64] = '\0';
		if(!mqs_conftab_set(mqs_conftab_find(opt_table, OPT_COUNT, "node", 4), cfg, host, err, errlen))
			return false;
	} else if(!node_valid(cfg->node)) {
		snprintf(err, errlen, "plugin_opt_node: '%s' must match [A-Za-z0-9_.-]{1,64}", cfg->node);
		return false;
	}
	if(cfg->spool_dir[0] != '/') {
		snprintf(err, errlen, "plugin_opt_spool_dir: must be an absolute path, got '%s'", cfg->spool_dir);
		return false;
	}
	return true;
}

const char *mqs_config_describe(const struct mqs_config *cfg, char *buf, size_t buflen)
{
	snprintf(buf, buflen,
	         "node=%s spool_dir=%s auth=%s envelope=%s other_topics=%s max_payload=%ld receipts_max_members=%ld "
	         "refusal_log_burst=%ld batch_max=%ld spool_max_bytes=%ld spool_fsync=%s reconnect_max_ms=%ld "
	         "presence_interval_s=%ld "
	         "wake_address=%s",
	         cfg->node, cfg->spool_dir, cfg->auth ? "true" : "false", envelope_choices[cfg->envelope],
	         other_choices[cfg->other_topics], cfg->max_payload, cfg->receipts_max_members, cfg->refusal_log_burst,
	         cfg->batch_max, cfg->spool_max_bytes, cfg->spool_fsync ? "true" : "false", cfg->reconnect_max_ms,
	         cfg->presence_interval_s, cfg->wake_address);
	return buf;
}

void mqs_config_free(struct mqs_config *cfg)
{
	mqs_conftab_free(opt_table, OPT_COUNT, cfg);
}
