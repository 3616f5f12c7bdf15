/* plugin: the three exported Mosquitto entry points; owns the plugin context's lifetime. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "version.h"

#define EXPORT __attribute__((visibility("default")))

struct mqs_plugin {
	mosquitto_plugin_id_t *pid;
	struct mqs_config cfg;
};

EXPORT int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++) {
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

EXPORT int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data, struct mosquitto_opt *opts,
                                 int opt_count)
{
	char err[512];
	char desc[1024];
	struct mqs_plugin *p = calloc(1, sizeof(*p));

	if(p == NULL) return MOSQ_ERR_NOMEM;
	p->pid = identifier;
	if(!mqs_config_parse(&p->cfg, opts, opt_count, err, sizeof(err))) {
		mosquitto_log_printf(MOSQ_LOG_ERR, "mqsync: invalid configuration: %s", err);
		free(p);
		return MOSQ_ERR_INVAL;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "mqsync: plugin %s starting: %s", MQS_VERSION,
	                     mqs_config_describe(&p->cfg, desc, sizeof(desc)));
	*user_data = p;
	return MOSQ_ERR_SUCCESS;
}

EXPORT int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	struct mqs_plugin *p = user_data;

	(void)opts;
	(void)opt_count;
	if(p == NULL) return MOSQ_ERR_SUCCESS;
	mqs_config_free(&p->cfg);
	free(p);
	return MOSQ_ERR_SUCCESS;
}
