/* config: mqsyncd's settings table: command-line flags and MQSYNC_* environment (SPEC 6). */
#ifndef MQS_SYNCD_CONFIG_H
#define MQS_SYNCD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct syncd_config {
	char *listen;              /* host:port, default 127.0.0.1:8080 */
	char *db;                  /* libpq conninfo, default "" (libpq's PG* environment) */
	long threads;              /* HTTP worker threads = database pool size, default 4 */
	char *admin_token_file;    /* default none */
	char *admin_token;         /* from MQSYNC_ADMIN_TOKEN or the file's first line */
	long receipts_max_members; /* per-recipient status lists only up to this group size, default 1000 */
	bool admin;                /* `user add --admin` */
};

enum syncd_command { SYNCD_SERVE, SYNCD_MIGRATE, SYNCD_USER_ADD, SYNCD_HELP, SYNCD_VERSION };

/* Parses argv (after the program name) and the environment into cfg. On success sets *cmd and, for
 * `user add`, *arg to the user id (points into argv). Flags win over the environment.
 * Returns false with a message in err on an unknown flag, a missing value or an invalid one.
 * cfg owns its strings: free with syncd_config_free in every case; after a failure cfg is still
 * valid (defaults and the values set so far). */
MQS_MUST_CHECK bool syncd_config_parse(struct syncd_config *cfg, int argc, char **argv, enum syncd_command *cmd,
                                       const char **arg, char *err, size_t errlen);

/* Splits cfg->listen into host and port. Returns false if it is not HOST:PORT with a port 1-65535. */
MQS_MUST_CHECK bool syncd_config_listen(const struct syncd_config *cfg, char *host, size_t hostlen,
                                        unsigned short *port);

/* Frees the strings of cfg and zeroes it (cfg itself is not freed). Accepts a zeroed cfg. */
void syncd_config_free(struct syncd_config *cfg);

extern const char syncd_usage[];

#endif
