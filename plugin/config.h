/* config: the plugin's plugin_opt_* table, parsed and validated at init (SPEC 6). */
#ifndef MQS_PLUGIN_CONFIG_H
#define MQS_PLUGIN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct mosquitto_opt;

enum mqs_envelope { MQS_ENVELOPE_PROPERTIES = 0, MQS_ENVELOPE_JSON = 1 };
enum mqs_other_topics { MQS_OTHER_DEFER = 0, MQS_OTHER_ALLOW = 1, MQS_OTHER_DENY = 2 };

struct mqs_config {
	char *conninfo;            /* required */
	char *node;                /* default: hostname */
	char *spool_dir;           /* default: /var/lib/mqsync */
	bool auth;                 /* default: true */
	int envelope;              /* enum mqs_envelope */
	int other_topics;          /* enum mqs_other_topics */
	long max_payload;          /* bytes, default 262144 */
	long receipts_max_members; /* default 1000 */
	long refusal_log_burst;    /* refusal log lines per reason per second, default 5; 0: all (plog.c) */
	long batch_max;            /* messages per transaction, default 1000 */
	long spool_max_bytes;      /* backpressure limit, default 256 MiB */
	bool spool_fsync;          /* fsync each spool append, default false */
	long reconnect_max_ms;     /* writer backoff ceiling, default 5000 */
	long presence_interval_s;  /* last_seen refresh, default 30 */
	char *wake_address;        /* HOST:PORT of a plain MQTT listener of this broker, or "none" */
};

/* Fills cfg from opts. Every value is copied: cfg owns its strings; free with mqs_config_free, in
 * every case. Returns false on an unknown key, a missing required key or an invalid value, with a
 * message naming the option in err; cfg is then still valid (defaults and the values set so far). */
MQS_MUST_CHECK bool mqs_config_parse(struct mqs_config *cfg, const struct mosquitto_opt *opts, int count, char *err,
                                     size_t errlen);

/* One line describing the effective options (no secrets: the conninfo password is masked).
 * Writes into buf; returns buf. */
const char *mqs_config_describe(const struct mqs_config *cfg, char *buf, size_t buflen);

/* Frees the strings of cfg (cfg itself is not freed). Accepts a zeroed cfg. */
void mqs_config_free(struct mqs_config *cfg);

#endif
