/* plugin: the three exported Mosquitto entry points; owns the plugin context's lifetime: options,
 * spool replay, threads, callback registration, and an orderly shutdown. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"
#include "version.h"

#define EXPORT              __attribute__((visibility("default")))
#define SPOOL_SEGMENT_BYTES (64L * 1024 * 1024)
#define FIRST_LOAD_WAIT_MS  5000
/* How long the broker loop may wait idle before the next TICK: 2.0's fixed epoll timeout, asked for
 * explicitly on 2.1 (see ask_tick_within). */
#define IDLE_TICK_MS 100
/* MOSQ_EVT_CONNECT: an event 2.1 added (2.0's headers do not name it); registering it fails on 2.0. */
#define EVT_CONNECT_21 11

/* 2.1's loop waits in epoll until its next event (24 h when idle; 2.0 waits at most 100 ms), and it
 * runs a TICK callback only once the time the callback asked for has passed — so a plain
 * next_ms = 100 would skip the TICK of every loop iteration that socket activity starts within those
 * 100 ms, and that iteration's wait would again be unbounded (the wake-up, a receipt, a commit with
 * wake_address none would sit there until a keepalive or $SYS update). The answer below keeps
 * 2.0's behaviour: a TICK on every iteration, and an idle wait of at most IDLE_TICK_MS. 2.1.2
 * (src/plugin_tick.c) lowers the wait by next_s * 1000 + next_ms = IDLE_TICK_MS and records the
 * callback's next run as now + next_s s + next_ms ms, carrying at most one second out of the
 * nanoseconds, and compares seconds first: with next_s = -2 the recorded seconds are one before
 * now (the nanoseconds hold the rest, unnormalised), so every later iteration runs it. On a
 * 2.1 that normalises fully, this degrades to next_ms = IDLE_TICK_MS: waits of up to 5 s (2.1's
 * keepalive check) with clients connected, 24 h without; test_compat_loop.py would fail. The
 * field 2.1 calls next_ms is next_ns in 2.0's headers, at the same offset; 2.0 reads neither field,
 * and this is only written when the loop is 2.1's (p->loop_21). */
static void ask_tick_within(struct mosquitto_evt_tick *ev)
{
	ev->next_s = -2;
	ev->next_ns = 2000 + IDLE_TICK_MS; /* 2.1: next_ms */
}

static int on_tick(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_tick *ev = event_data;
	struct mqs_plugin *p = userdata;

	(void)event;
	if(p->loop_21) ask_tick_within(ev);
	p->reauth_pass = false;
	mqs_wake_tick(&p->wake);
	/* Every tick re-arms the wake-up, even with nothing to drain: a poke that arrived after the
	 * previous drain must not leave the flag set with no packet coming. */
	mqs_wake_clear(&p->wake);
	if(atomic_load(&p->to_broker.count) > 0) mqs_deliver_drain(p, MQS_DRAIN_LIVE);
	mqs_presence_heartbeat(p, ev->now_s);
	mqs_clients_tick(p);
	mqs_refusal_tick(p);
	return MOSQ_ERR_SUCCESS;
}

static const struct {
	int event;
	MOSQ_FUNC_generic_callback cb;
	const char *name;
} callbacks[] = {
        {MOSQ_EVT_BASIC_AUTH, mqs_on_basic_auth, "basic_auth"}, {MOSQ_EVT_ACL_CHECK, mqs_on_acl_check, "acl_check"},
        {MOSQ_EVT_MESSAGE, mqs_on_message, "message"},          {MOSQ_EVT_TICK, on_tick, "tick"},
        {MOSQ_EVT_DISCONNECT, mqs_on_disconnect, "disconnect"}, {MOSQ_EVT_RELOAD, mqs_on_reload, "reload"},
};
#define CALLBACK_COUNT (sizeof(callbacks) / sizeof(callbacks[0]))

/* Stops the threads (the writer flushes for up to 3 s) and frees everything. Accepts a partly
 * initialised context (after mqs_queue_init and mqs_wake_init). */
static void plugin_free(struct mqs_plugin *p)
{
	if(p == NULL) return;
	atomic_store(&p->stopping, true);
	mqs_queue_kick(&p->to_writer);
	mqs_queue_kick(&p->to_catchup);
	if(p->catchup_started) pthread_join(p->catchup, NULL);
	if(p->listener_started) pthread_join(p->listener, NULL);
	if(p->writer_started) pthread_join(p->writer, NULL);
	/* Print what the threads said last; release what was committed. */
	if(p->spool != NULL) mqs_deliver_drain(p, MQS_DRAIN_STOP);
	mqs_queue_destroy(&p->to_writer);
	mqs_queue_destroy(&p->to_catchup);
	mqs_queue_destroy(&p->to_broker);
	mqs_wake_close(&p->wake);
	mqs_spool_close(p->spool);
	mqs_state_free(p->state);
	hmap_free(p->clients);
	mqs_clients_removals_free(p);
	hmap_free(p->refusals);
	hmap_free(p->conns);
	free(p->last_auth_id);
	hmap_free(p->catchups);
	mqs_config_free(&p->cfg);
	free(p);
}

static int on_probe(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	(void)userdata;
	return MOSQ_ERR_SUCCESS;
}

/* True when the broker knows 2.1's events (and so runs 2.1's loop): registering MOSQ_EVT_CONNECT
 * succeeds there and fails with MOSQ_ERR_NOT_SUPPORTED on 2.0. No broker exports a version call
 * on all three versions; the probe callback is removed at once. */
static bool broker_has_21_events(mosquitto_plugin_id_t *identifier)
{
	if(mosquitto_callback_register(identifier, EVT_CONNECT_21, on_probe, NULL, NULL) != MOSQ_ERR_SUCCESS)
		return false;
	mosquitto_callback_unregister(identifier, EVT_CONNECT_21, on_probe, NULL);
	return true;
}

static void free_ptr(void *v)
{
	free(v);
}

/* Waits (at start only) until the listener delivered the first snapshot, so the first clients can
 * authenticate. With the database down the broker starts anyway and refuses logins until then. */
static void wait_first_snapshot(struct mqs_plugin *p)
{
	for(int waited = 0; waited < FIRST_LOAD_WAIT_MS && !p->state->loaded; waited += 20) {
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
		mqs_deliver_drain(p, MQS_DRAIN_START);
	}
	if(!p->state->loaded)
		mqs_plog(NULL, MOSQ_LOG_WARNING,
		         "database not reachable yet: logins are refused until users are loaded");
}

/* The context's parts that cannot fail for a reason worth a message: randomness, maps, the empty
 * state. False on out of memory or no randomness. */
static bool plugin_alloc(struct mqs_plugin *p)
{
	uint8_t rnd[16];

	if(RAND_bytes(p->epoch, sizeof(p->epoch)) != 1 || RAND_bytes(rnd, sizeof(rnd)) != 1) return false;
	snprintf(p->sentinel, sizeof(p->sentinel), "mqsync-held:");
	for(size_t i = 0; i < sizeof(rnd); i++) sprintf(p->sentinel + strlen(p->sentinel), "%02x", rnd[i]);
	p->sentinel_len = strlen(p->sentinel);
	p->clients = hmap_new(free_ptr);
	p->conns = hmap_new(NULL);
	p->catchups = hmap_new(free_ptr);
	p->refusals = hmap_new(free_ptr);
	p->state = mqs_state_new();
	return p->clients != NULL && p->conns != NULL && p->catchups != NULL && p->refusals != NULL && p->state != NULL;
}

/* Opens and replays the spool, then starts the listener (with its own copy of the epochs),
 * waits for the first state and starts the writer. False on failure (logged, or out of memory). */
static bool plugin_start(struct mqs_plugin *p)
{
	char err[512];
	struct mqs_epochs own = {NULL, 0};
	bool ok = false;

	p->spool = mqs_spool_open(p->cfg.spool_dir, SPOOL_SEGMENT_BYTES, p->cfg.spool_fsync, err, sizeof(err));
	if(p->spool == NULL) {
		mqs_plog(NULL, MOSQ_LOG_ERR, "plugin_opt_spool_dir: %s", err);
		return false;
	}
	if(mqs_replay_spool(p, &own) >= 0 && mqs_listener_start(p, &own)) {
		wait_first_snapshot(p);
		ok = mqs_writer_start(p) && mqs_catchup_start(p);
	}
	mqs_epochs_free(&own);
	return ok;
}

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
	size_t registered = 0;
	struct mqs_plugin *p = calloc(1, sizeof(*p));

	if(p == NULL) return MOSQ_ERR_NOMEM;
	p->pid = identifier;
	p->loop_21 = broker_has_21_events(identifier);
	mqs_queue_init(&p->to_writer);
	mqs_queue_init(&p->to_broker);
	mqs_queue_init(&p->to_catchup);
	mqs_wake_init(&p->wake);
	atomic_store(&p->stopping, false);
	if(!mqs_config_parse(&p->cfg, opts, opt_count, err, sizeof(err))) {
		mqs_plog(NULL, MOSQ_LOG_ERR, "invalid configuration: %s", err);
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}
	if(!mqs_wake_configure(&p->wake, p->cfg.wake_address)) {
		mqs_plog(NULL, MOSQ_LOG_ERR,
		         "invalid configuration: plugin_opt_wake_address: expected IPV4:PORT or none, got '%s'",
		         p->cfg.wake_address);
		plugin_free(p);
		return MOSQ_ERR_INVAL;
	}
	mqs_plog(NULL, MOSQ_LOG_NOTICE, "plugin %s starting (broker API %s): %s", MQS_VERSION,
	         p->loop_21 ? "2.1" : "2.0", mqs_config_describe(&p->cfg, desc, sizeof(desc)));
	if(!plugin_alloc(p) || !plugin_start(p)) goto fail;

	for(registered = 0; registered < CALLBACK_COUNT; registered++) {
		int rc = mosquitto_callback_register(identifier, callbacks[registered].event, callbacks[registered].cb,
		                                     NULL, p);
		if(rc != MOSQ_ERR_SUCCESS) {
			mqs_plog(NULL, MOSQ_LOG_ERR, "cannot register the %s callback (%d)", callbacks[registered].name,
			         rc);
			goto fail;
		}
	}
	/* 2.1 reports a persistent session's client going away as CLIENT_OFFLINE (28), not DISCONNECT;
	 * 2.0 does not know the event and refuses it (it sends DISCONNECT then). Same event layout. */
	if(mosquitto_callback_register(identifier, MQS_EVT_CLIENT_OFFLINE, mqs_on_disconnect, NULL, p) ==
	   MOSQ_ERR_SUCCESS)
		p->client_offline_registered = true;
	*user_data = p;
	return MOSQ_ERR_SUCCESS;

fail:
	while(registered-- > 0)
		mosquitto_callback_unregister(identifier, callbacks[registered].event, callbacks[registered].cb, NULL);
	mqs_plog(NULL, MOSQ_LOG_ERR, "plugin failed to start");
	plugin_free(p);
	return MOSQ_ERR_UNKNOWN;
}

EXPORT int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	struct mqs_plugin *p = user_data;

	(void)opts;
	(void)opt_count;
	if(p == NULL) return MOSQ_ERR_SUCCESS;
	for(size_t i = 0; i < CALLBACK_COUNT; i++) {
		mosquitto_callback_unregister(p->pid, callbacks[i].event, callbacks[i].cb, NULL);
	}
	if(p->client_offline_registered)
		mosquitto_callback_unregister(p->pid, MQS_EVT_CLIENT_OFFLINE, mqs_on_disconnect, NULL);
	mqs_plog(NULL, MOSQ_LOG_NOTICE, "stopping (accepted %llu, refused %llu, delivered %llu)",
	         (unsigned long long)p->stat_accepted, (unsigned long long)p->stat_refused,
	         (unsigned long long)p->stat_delivered);
	plugin_free(p);
	return MOSQ_ERR_SUCCESS;
}
