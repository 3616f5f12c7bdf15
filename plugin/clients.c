/* clients: authentication (SPEC 2), the table of connected clients by pointer (who is connected
 * now: SPEC 3.1 wills, 3.6), token revocation, and presence (SPEC 3.5). Broker thread only. */
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

struct mqs_client *mqs_client_get(struct mqs_plugin *p, const struct mosquitto *client)
{
	return hmap_get(p->clients, &client, sizeof(client));
}

const char *mqs_client_uid(struct mqs_plugin *p, const struct mosquitto *client)
{
	struct mqs_client *c = mqs_client_get(p, client);
	if(c != NULL) return c->user[0] ? c->user : NULL;
	if(!p->cfg.auth) {
		/* Authenticated elsewhere with a username that was not a valid id when it connected. */
		const char *u = mosquitto_client_username(client);
		return mqs_id_valid(u) ? u : NULL;
	}
	return NULL;
}

const char *mqs_client_name(struct mqs_plugin *p, const struct mosquitto *client)
{
	const char *uid = mqs_client_uid(p, client);
	return uid != NULL ? uid : mosquitto_client_username(client);
}

bool mqs_client_connected(struct mqs_plugin *p, const struct mosquitto *client)
{
	struct mqs_client *c = mqs_client_get(p, client);

	/* No record: a clean session's client is gone (its record went at DISCONNECT, before its will's
	 * check), or it never logged in here. With auth false, a client another plugin logged in without
	 * asking us is treated as not connected too: fail closed (docs/plugin.md: load mqsync first). */
	if(c == NULL) return false;
	if(!c->online) return false;
	/* A session takeover sends the old connection's will (a WRITE check on its pointer) after the new
	 * connection with the same client id has logged in and before the old one's DISCONNECT. */
	if(p->last_auth != NULL && p->last_auth != client) {
		const char *id = mosquitto_client_id(client);
		if(id != NULL && strcmp(id, p->last_auth_id) == 0) return false;
	}
	return true;
}

/* Remembers client as the last one that logged in (not in the SIGHUP pass, which visits every
 * session). Out of memory: forgotten, so a takeover's will goes unnoticed (docs/plugin.md). */
static void note_login(struct mqs_plugin *p, const struct mosquitto *client)
{
	const char *id = mosquitto_client_id(client);

	if(p->reauth_pass) return;
	free(p->last_auth_id);
	p->last_auth_id = id != NULL ? strdup(id) : NULL;
	p->last_auth = p->last_auth_id != NULL ? client : NULL;
}

/* Adds delta to uid's connection count on this node and tells the writer the new count. */
static void presence_change(struct mqs_plugin *p, const char *uid, int delta)
{
	intptr_t n = (intptr_t)hmap_gets(p->conns, uid) + delta;
	if(n <= 0) {
		hmap_dels(p->conns, uid);
		n = 0;
	} else if(!hmap_puts(p->conns, uid, (void *)n)) {
		/* Out of memory: the count is told to the writer but not kept here, so the next change
		 * for this user starts from zero again. */
		mqs_plog(NULL, MOSQ_LOG_WARNING, "out of memory: connections of '%s' not counted", uid);
	}
	struct mqs_presence *pr = calloc(1, sizeof(*pr));
	if(pr == NULL) return;
	pr->hdr.kind = ITEM_PRESENCE;
	snprintf(pr->user, sizeof(pr->user), "%s", uid);
	pr->connections = (int)n;
	mqs_queue_push(&p->to_writer, &pr->hdr);
}

void mqs_presence_heartbeat(struct mqs_plugin *p, time_t now)
{
	if(now - p->last_heartbeat < p->cfg.presence_interval_s) return;
	p->last_heartbeat = now;
	struct mqs_item *hb = calloc(1, sizeof(*hb));
	if(hb == NULL) return;
	hb->kind = ITEM_HEARTBEAT;
	mqs_queue_push(&p->to_writer, hb);
}

/* Records client as uid (or as the wake connection) and counts it as connected. During the SIGHUP
 * re-authentication pass the record is updated but its online state and presence are left alone:
 * that pass also visits sessions whose clients are away. A pointer may be one Mosquitto freed and
 * reused for a new client: the record is simply overwritten. */
static int remember(struct mqs_plugin *p, struct mosquitto *client, const char *uid, const uint8_t *token_hash,
                    bool wake)
{
	struct mqs_client *c = mqs_client_get(p, client);

	if(c == NULL) {
		c = calloc(1, sizeof(*c));
		if(c == NULL || !hmap_put(p->clients, &client, sizeof(client), c)) {
			free(c);
			return MOSQ_ERR_NOMEM;
		}
	}
	bool was_online = c->online && !c->wake;
	bool same_user = strcmp(c->user, uid ? uid : "") == 0;
	bool online = p->reauth_pass ? c->online : true;
	if(was_online && (!same_user || !online)) presence_change(p, c->user, -1);
	snprintf(c->user, sizeof(c->user), "%s", uid ? uid : "");
	c->wake = wake;
	c->online = online;
	c->has_token = token_hash != NULL;
	if(token_hash) memcpy(c->token_hash, token_hash, MQS_TOKEN_HASH_LEN);
	if(online && !wake && uid != NULL && (!was_online || !same_user)) presence_change(p, uid, +1);
	return MOSQ_ERR_SUCCESS;
}

int mqs_on_reload(int event, void *event_data, void *userdata)
{
	struct mqs_plugin *p = userdata;
	(void)event;
	(void)event_data;
	p->reauth_pass = true; /* cleared at the next TICK, after the re-authentication pass */
	return MOSQ_ERR_SUCCESS;
}

/* Whether password can be a token: exactly MQS_TOKEN_LEN base64url characters. The MQTT password
 * is binary, but Mosquitto (2.0 and 2.1) hands BASIC_AUTH only a NUL-terminated copy, without its
 * length: the bytes from a NUL on are invisible here. Requiring the whole visible part to be one
 * token means a NUL can only ever hide bytes after a complete token (docs/plugin.md). */
static bool token_shaped(const char *password)
{
	size_t n = 0;

	if(password == NULL) return false;
	for(; password[n] != '\0'; n++) {
		char ch = password[n];
		bool b64url = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		              ch == '-' || ch == '_';
		if(!b64url || n >= MQS_TOKEN_LEN) return false;
	}
	return n == MQS_TOKEN_LEN;
}

int mqs_on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ev = event_data;
	struct mqs_plugin *p = userdata;
	const char *clientid = mosquitto_client_id(ev->client);
	const char *uid = ev->username;
	uint8_t hash[MQS_TOKEN_HASH_LEN];

	(void)event;
	if(clientid != NULL && strpbrk(clientid, "+#") != NULL) {
		mqs_refusal_log(p, NULL, "connection", "client id with + or #",
		                "refused client id '%s': contains + or #", clientid);
		return MOSQ_ERR_AUTH;
	}
	if(uid != NULL && strpbrk(uid, "+#") != NULL) {
		mqs_refusal_log(p, ev->client, "connection", "username with + or #", "refused username with + or #");
		return MOSQ_ERR_AUTH;
	}
	if(mqs_wake_is_credential(&p->wake, uid, ev->password)) return remember(p, ev->client, NULL, NULL, true);
	if(!p->cfg.auth) {
		/* Another mechanism authenticates; the username is the user id. A client without a valid
		 * one must not inherit a stale record of a freed pointer. */
		if(mqs_id_valid(uid)) {
			if(remember(p, ev->client, uid, NULL, false) == MOSQ_ERR_SUCCESS) note_login(p, ev->client);
		} else
			hmap_del(p->clients, &ev->client, sizeof(ev->client));
		return MOSQ_ERR_PLUGIN_DEFER;
	}
	if(!p->state->loaded) {
		mqs_plog(ev->client, MOSQ_LOG_WARNING, "refused '%s': users not loaded yet (database unreachable?)",
		         uid ? uid : "");
		return MOSQ_ERR_AUTH;
	}
	const struct mqs_user *u = mqs_id_valid(uid) ? mqs_state_user(p->state, uid) : NULL;
	if(u == NULL || !token_shaped(ev->password) || !mqs_token_hash(ev->password, MQS_TOKEN_LEN, hash) ||
	   !mqs_user_has_token(u, hash)) {
		mqs_refusal_log(p, ev->client, "connection", "authentication failed",
		                "authentication failed for user '%s'", mqs_id_valid(uid) ? uid : "?");
		return MOSQ_ERR_AUTH;
	}
	int rc = remember(p, ev->client, uid, hash, false);
	if(rc == MOSQ_ERR_SUCCESS) note_login(p, ev->client);
	return rc;
}

int mqs_on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ev = event_data;
	struct mqs_plugin *p = userdata;
	struct mqs_client *c = mqs_client_get(p, ev->client);

	(void)event;
	if(p->last_auth == ev->client) {
		free(p->last_auth_id);
		p->last_auth_id = NULL;
		p->last_auth = NULL;
	}
	mqs_catchup_forget(p, ev->client); /* a page in flight for this connection is dropped */
	if(c == NULL) return MOSQ_ERR_SUCCESS;
	if(c->online) {
		if(!c->wake && c->user[0] != '\0') presence_change(p, c->user, -1);
		c->online = false;
		/* A persistent session outlives its connection: keep the record, marked offline, so that
		 * READ checks for it are denied (SPEC 3.6: nothing is queued for it) and its will's WRITE
		 * check is refused (3.1). Mosquitto 2.0 sends a second DISCONNECT for this pointer when the
		 * session is resumed, taken over or expires (2.1 sends CLIENT_OFFLINE first, then that). */
		if(!c->wake && c->user[0] != '\0' && !mosquitto_client_clean_session(ev->client))
			return MOSQ_ERR_SUCCESS;
	}
	hmap_del(p->clients, &ev->client, sizeof(ev->client));
	return MOSQ_ERR_SUCCESS;
}

#define KICK_BATCH 32

/* One walk over the client table for the online connections of uid (or of the users in users)
 * that want() picks. */
struct kick_walk {
	struct mqs_plugin *p;
	const char *uid;
	const struct hmap *users;    /* instead of uid: uid -> the gid it was removed from */
	const struct mqs_user *user; /* uid's record; NULL: the user is gone */
	bool (*want)(const struct kick_walk *w, const struct mqs_client *c, const struct mosquitto *client);
	const char *why;              /* for the log line (with uid) */
	const char *kick[KICK_BATCH]; /* client ids to disconnect (the broker's strings) */
	char kick_user[KICK_BATCH][MQS_ID_MAX + 1];
	const char *kick_group[KICK_BATCH]; /* with users: the group */
	size_t nkick;
	bool more; /* more clients to disconnect than this batch holds */
};

static void check_client(const void *key, size_t keylen, void *value, void *arg)
{
	struct kick_walk *w = arg;
	struct mqs_client *c = value;
	struct mosquitto *client;
	const char *gid = NULL;

	(void)keylen;
	if(c->wake || !c->online) return;
	if(w->users != NULL ? (gid = hmap_gets(w->users, c->user)) == NULL : strcmp(c->user, w->uid) != 0) return;
	memcpy(&client, key, sizeof(client));
	if(!w->want(w, c, client)) return;
	const char *id = mosquitto_client_id(client);
	if(id == NULL) return;
	if(w->nkick == KICK_BATCH) {
		w->more = true;
		return;
	}
	snprintf(w->kick_user[w->nkick], sizeof(w->kick_user[0]), "%s", c->user);
	w->kick_group[w->nkick] = gid;
	w->kick[w->nkick++] = id;
}

/* Kicks in batches of KICK_BATCH, walking the table again after each: a kick calls back into
 * DISCONNECT, which edits the table (so never during the walk) and marks the record offline (so the
 * next walk skips it). No allocation, so running out of memory cannot leave a revoked client
 * connected. Bounded by the number of records, in case a kick leaves one online. */
static void kick_matching(struct kick_walk *w)
{
	size_t passes = hmap_count(w->p->clients) / KICK_BATCH + 2;

	do {
		w->nkick = 0;
		w->more = false;
		hmap_each(w->p->clients, check_client, w);
		for(size_t i = 0; i < w->nkick; i++) {
			if(w->kick_group[i] != NULL)
				mqs_plog(NULL, MOSQ_LOG_NOTICE,
				         "disconnecting client '%s' of user '%s': removed from group '%s'", w->kick[i],
				         w->kick_user[i], w->kick_group[i]);
			else
				mqs_plog(NULL, MOSQ_LOG_NOTICE, "disconnecting client '%s' of user '%s': %s",
				         w->kick[i], w->kick_user[i], w->why);
			mosquitto_kick_client_by_clientid(w->kick[i], false);
		}
	} while(w->more && --passes > 0);
}

/* A connection whose token is no longer one of its user's (or whose user is gone). */
static bool revoked(const struct kick_walk *w, const struct mqs_client *c, const struct mosquitto *client)
{
	(void)client;
	if(w->user != NULL && (!c->has_token || mqs_user_has_token(w->user, c->token_hash))) return false;
	return w->p->cfg.auth || w->user != NULL; /* auth false and the user gone: not ours to judge */
}

void mqs_clients_revalidate(struct mqs_plugin *p, const char *uid)
{
	struct kick_walk w = {
	        .p = p, .uid = uid, .user = mqs_state_user(p->state, uid), .want = revoked, .why = "token revoked"};
	kick_matching(&w);
}

/* A connection that may hold deliveries of a group its user was just removed from. */
static bool may_hold_group(const struct kick_walk *w, const struct mqs_client *c, const struct mosquitto *client)
{
	(void)w;
	return c->group_subs || !mosquitto_client_clean_session(client);
}

void mqs_clients_removed(struct mqs_plugin *p, const char *uid, const char *gid)
{
	struct mqs_removal *r = calloc(1, sizeof(*r));

	if(r == NULL) {
		mqs_plog(NULL, MOSQ_LOG_WARNING,
		         "out of memory: connections of '%s' not disconnected after removal from '%s'", uid, gid);
		return;
	}
	r->due_ms = mqs_now_ms(CLOCK_MONOTONIC) + MQS_REMOVAL_KICK_MS;
	snprintf(r->user, sizeof(r->user), "%s", uid);
	snprintf(r->group, sizeof(r->group), "%s", gid);
	if(p->removals == NULL) p->removals_tail = &p->removals;
	*p->removals_tail = r;
	p->removals_tail = &r->next;
}

/* The due removals, one walk over the client table for all of them (a deleted group with 10,000
 * connected members costs one walk, not 10,000). Users with no connection here are skipped. */
void mqs_clients_tick(struct mqs_plugin *p)
{
	if(p->removals == NULL) return;
	int64_t now = mqs_now_ms(CLOCK_MONOTONIC);
	struct mqs_removal *due = p->removals, **end = &p->removals;
	struct hmap *users;

	while(*end != NULL && (*end)->due_ms <= now) end = &(*end)->next;
	if(end == &p->removals) return;
	p->removals = *end;
	*end = NULL;
	if(p->removals == NULL) p->removals_tail = &p->removals;
	if((users = hmap_new(NULL)) == NULL) {
		mqs_plog(NULL, MOSQ_LOG_WARNING, "out of memory: removed members not disconnected");
	} else {
		for(struct mqs_removal *r = due; r != NULL; r = r->next) {
			if(hmap_gets(p->conns, r->user) == NULL || mqs_state_is_admin(p->state, r->user) ||
			   mqs_state_is_member(p->state, r->group, r->user) || hmap_gets(users, r->user) != NULL)
				continue;
			if(!hmap_puts(users, r->user, r->group))
				mqs_plog(NULL, MOSQ_LOG_WARNING,
				         "out of memory: '%s' not disconnected after removal from '%s'", r->user,
				         r->group);
		}
		struct kick_walk w = {.p = p, .users = users, .want = may_hold_group};
		if(hmap_count(users) > 0) kick_matching(&w);
		hmap_free(users);
	}
	while(due != NULL) {
		struct mqs_removal *r = due;
		due = r->next;
		free(r);
	}
}

void mqs_clients_removals_free(struct mqs_plugin *p)
{
	while(p->removals != NULL) {
		struct mqs_removal *r = p->removals;
		p->removals = r->next;
		free(r);
	}
}
