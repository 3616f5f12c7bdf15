/* main: mqsyncd's commands (serve, migrate, user add) and process lifetime. */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "migrate.h"
#include "pg.h"
#include "slog.h"
#include "store_users.h"
#include "version.h"

/* Opens one connection for a CLI command (the common connect: keepalives, a 10 s connect timeout).
 * NULL with a message on stderr on failure; the caller PQfinish()es it. */
static PGconn *cli_connect(const struct syncd_config *cfg)
{
	PGconn *c = mqs_pg_connect(cfg->db, "mqsyncd-cli", "10", NULL);
	if(PQstatus(c) != CONNECTION_OK) {
		syncd_log(MQS_LOG_ERR, NULL, "cannot connect to the database: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

static int cmd_migrate(const struct syncd_config *cfg)
{
	char err[1024];
	PGconn *c = cli_connect(cfg);
	if(c == NULL) return 1;
	int n = mqs_migrate(c, err, sizeof(err));
	if(n < 0) {
		syncd_log(MQS_LOG_ERR, "migrate", "migration failed: %s", err);
		PQfinish(c);
		return 1;
	}
	syncd_log(MQS_LOG_INFO, "migrate", "schema at version %d (%d migration%s applied)", mqs_schema_version(c), n,
	          n == 1 ? "" : "s");
	PQfinish(c);
	return 0;
}

static int cmd_user_add(const struct syncd_config *cfg, const char *id)
{
	char token[MQS_TOKEN_LEN + 1];
	PGconn *c = cli_connect(cfg);
	if(c == NULL) return 1;
	struct db_conn db = {c, "user add"};
	enum store_rc rc = store_user_create(&db, id, cfg->admin, token);
	PQfinish(c);
	switch(rc) {
	case STORE_OK:
		printf("%s\n", token);
		return 0;
	case STORE_INVALID:
		syncd_log(MQS_LOG_ERR, "user add", "user id '%s' must match [A-Za-z0-9_-]{1,64}", id);
		return 2;
	case STORE_CONFLICT:
		syncd_log(MQS_LOG_ERR, "user add", "user '%s' already exists", id);
		return 3;
	default:
		syncd_log(MQS_LOG_ERR, "user add", "cannot create user '%s'", id);
		return 1;
	}
}

static int cmd_serve(const struct syncd_config *cfg)
{
	sigset_t set;
	int sig = 0;

	/* Block the stop signals before any thread starts, then wait for one on this thread. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	syncd_log(MQS_LOG_INFO, NULL, "mqsyncd %s starting", MQS_VERSION);
	struct syncd *sd = syncd_start(cfg);
	if(sd == NULL) return 1;
	sigwait(&set, &sig);
	syncd_log(MQS_LOG_INFO, NULL, "signal %d: stopping", sig);
	syncd_stop(sd);
	return 0;
}

int main(int argc, char **argv)
{
	struct syncd_config cfg;
	enum syncd_command cmd;
	const char *arg;
	char err[512];
	int rc;

	mqs_log_init("mqsyncd", MQS_LOG_INFO);
	if(!syncd_config_parse(&cfg, argc - 1, argv + 1, &cmd, &arg, err, sizeof(err))) {
		syncd_log(MQS_LOG_ERR, NULL, "%s", err);
		syncd_config_free(&cfg);
		return 2;
	}
	switch(cmd) {
	case SYNCD_HELP:
		fputs(syncd_usage, stdout);
		rc = 0;
		break;
	case SYNCD_VERSION:
		printf("mqsyncd %s\n", MQS_VERSION);
		rc = 0;
		break;
	case SYNCD_MIGRATE:
		rc = cmd_migrate(&cfg);
		break;
	case SYNCD_USER_ADD:
		rc = cmd_user_add(&cfg, arg);
		break;
	default:
		rc = cmd_serve(&cfg);
		break;
	}
	syncd_config_free(&cfg);
	return rc;
}
