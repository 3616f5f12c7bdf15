/* plog: the plugin's one log function on the broker thread: a fixed "mqsync: " prefix and the
 * client id when a connection is involved (as pgbouncer prefixes the connection). */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdarg.h>
#include <stdio.h>

#include "plugin.h"

void mqs_plog(const struct mosquitto *client, int level, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	const char *id = client != NULL ? mosquitto_client_id(client) : NULL;

	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if(n < 0) return;
	if(id != NULL)
		mosquitto_log_printf(level, "mqsync: client '%s': %s", id, buf);
	else
		mosquitto_log_printf(level, "mqsync: %s", buf);
}
