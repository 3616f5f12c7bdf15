/* plog: the plugin's one log function on the broker thread: a fixed "mqsync: " prefix and the
 * client id when a connection is involved (as pgbouncer prefixes the connection); and the throttle
 * every refusal line goes through (mqs_refusal_log). */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* One reason's counters: lines logged in the current second, refusals suppressed since. */
struct refusal_count {
	int64_t second;      /* monotonic ms / 1000 of the current window */
	int logged;          /* lines logged in that second */
	uint64_t suppressed; /* refusals not logged since since_ms */
	int64_t since_ms;    /* the first suppressed one (monotonic) */
	char reason[];
};

/* The counters of reason, created when absent (beyond MQS_REFUSAL_REASONS reasons, the shared
 * "other reasons" entry). NULL on out of memory. */
static struct refusal_count *refusal_count(struct mqs_plugin *p, const char *reason)
{
	struct refusal_count *c = hmap_gets(p->refusals, reason);

	if(c != NULL) return c;
	if(hmap_count(p->refusals) >= MQS_REFUSAL_REASONS) {
		reason = "other reasons";
		if((c = hmap_gets(p->refusals, reason)) != NULL) return c;
	}
	c = calloc(1, sizeof(*c) + strlen(reason) + 1);
	if(c == NULL) return NULL;
	strcpy(c->reason, reason);
	if(!hmap_puts(p->refusals, c->reason, c)) {
		free(c);
		return NULL;
	}
	return c;
}

void mqs_refusal_log(struct mqs_plugin *p, const struct mosquitto *client, const char *kind, const char *why,
                     const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int64_t now = mqs_now_ms(CLOCK_MONOTONIC);

	snprintf(buf, sizeof(buf), "%s: %s", kind, why);
	struct refusal_count *c = refusal_count(p, buf);

	if(c != NULL) {
		if(c->second != now / 1000) {
			c->second = now / 1000;
			c->logged = 0;
		}
		if(p->cfg.refusal_log_burst > 0 && c->logged >= p->cfg.refusal_log_burst) {
			if(c->suppressed++ == 0) c->since_ms = now;
			return;
		}
		c->logged++;
	}
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if(n >= 0) mqs_plog(client, MOSQ_LOG_NOTICE, "%s", buf);
}

static void refusal_summary(const void *key, size_t keylen, void *value, void *arg)
{
	struct refusal_count *c = value;
	int64_t now = *(const int64_t *)arg;

	(void)key;
	(void)keylen;
	if(c->suppressed == 0 || now - c->since_ms < MQS_REFUSAL_SUMMARY_S * 1000) return;
	mqs_plog(NULL, MOSQ_LOG_NOTICE, "%llu more refusals (%s) suppressed in the last %lld s",
	         (unsigned long long)c->suppressed, c->reason, (long long)((now - c->since_ms + 999) / 1000));
	c->suppressed = 0;
}

/* TICK runs up to tens of thousands of times a second under load: look once a second. */
void mqs_refusal_tick(struct mqs_plugin *p)
{
	int64_t now = mqs_now_ms(CLOCK_MONOTONIC);
	if(now < p->refusals_next_ms) return;
	p->refusals_next_ms = now + 1000;
	hmap_each(p->refusals, refusal_summary, &now);
}
