/* catchup: catch-up over MQTT (SPEC 3.6): requests on users/{uid}/sync checked on the broker thread,
 * their pages read by a thread of its own on a database connection of its own (never the writer's),
 * with the page logic, statements and tokens of GET /messages/sync (common/syncpage). deliver.c
 * publishes a page to the asking connection only.
 *
 * Client-paced: a connection has at most one request in flight (p->catchups); a second one is
 * refused until its page was sent. A page holds at most 1000 messages and about 1 MiB of payloads
 * (SPEC 5.2), so with Mosquitto's defaults (max_inflight_messages 20 + max_queued_messages 1000) a
 * whole page and its sync event fit the client's queue. A connection that goes away before its page
 * is back gets nothing (mqs_catchup_forget; the page is dropped). */
#include <libpq-fe.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pg.h"
#include "plugin.h"
#include "syncsql.h"

/* ---- broker thread ------------------------------------------------------------------------- */

static int refuse(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, const char *uid, const char *why)
{
	p->stat_refused++;
	mqs_refusal_log(p, ev->client, "catch-up request", why, "refused catch-up request from '%s' on '%s': %s",
	                uid ? uid : "?", ev->topic, why);
	return MOSQ_ERR_ACL_DENIED;
}

/* Registers c's connection as having a request in flight (new ticket). False on out of memory. */
static bool pending_add(struct mqs_plugin *p, struct mqs_catchup *c)
{
	uint64_t *t = malloc(sizeof(*t));

	if(t == NULL) return false;
	*t = c->ticket = ++p->catchup_ticket;
	if(!hmap_put(p->catchups, &c->conn, sizeof(c->conn), t)) {
		free(t);
		return false;
	}
	return true;
}

int mqs_catchup_request(struct mqs_plugin *p, const struct mosquitto_evt_message *ev, const char *uid,
                        const char *topic_uid)
{
	const char *why = NULL;
	const char *clientid = mosquitto_client_id(ev->client);
	struct mqs_catchup *c;

	if(uid == NULL || strcmp(uid, topic_uid) != 0) return refuse(p, ev, uid, "another user's sync topic");
	if(clientid == NULL) return refuse(p, ev, uid, "no client id");
	if(hmap_get(p->catchups, &ev->client, sizeof(ev->client)) != NULL)
		return refuse(p, ev, uid, "a page is still in flight on this connection (ask after its sync event)");
	c = calloc(1, sizeof(*c));
	if(c == NULL) return refuse(p, ev, uid, "out of memory");
	c->hdr.kind = ITEM_CATCHUP;
	if(!mqs_sync_req_parse(ev->payload, ev->payloadlen, &c->req, &why)) {
		free(c);
		return refuse(p, ev, uid, why);
	}
	if(c->req.group[0] != '\0' && !mqs_state_is_member(p->state, c->req.group, uid)) {
		why = mqs_state_group(p->state, c->req.group) ? "not a member of the group" : "no such group";
		mqs_item_free(&c->hdr);
		return refuse(p, ev, uid, why);
	}
	c->conn = ev->client;
	snprintf(c->user, sizeof(c->user), "%s", uid);
	c->clientid = strdup(clientid);
	if(c->clientid == NULL || !pending_add(p, c)) {
		mqs_item_free(&c->hdr);
		return refuse(p, ev, uid, "out of memory");
	}
	mqs_queue_push(&p->to_catchup, &c->hdr);
	return MOSQ_ERR_SUCCESS;
}

void mqs_catchup_forget(struct mqs_plugin *p, const struct mosquitto *client)
{
	hmap_del(p->catchups, &client, sizeof(client));
}

bool mqs_catchup_claim(struct mqs_plugin *p, const struct mqs_catchup *c)
{
	uint64_t *t = hmap_get(p->catchups, &c->conn, sizeof(c->conn));

	if(t == NULL || *t != c->ticket) return false;
	hmap_del(p->catchups, &c->conn, sizeof(c->conn));
	return true;
}

/* ---- catch-up thread: touches only libpq, its own state and the queues ---------------------- */

struct catchup {
	struct mqs_plugin *p;
	PGconn *conn;
	struct mqs_backoff reconnect;
	time_t last_error_log;
};

static void catchup__log(struct catchup *k, const char *what)
{
	time_t now = time(NULL);
	if(now - k->last_error_log < 10) return;
	k->last_error_log = now;
	mqs_bglog(k->p, MOSQ_LOG_WARNING, "catch-up: %s: %s", what,
	          k->conn ? PQerrorMessage(k->conn) : "no connection");
}

static bool catchup__prepare(struct catchup *k)
{
	static const struct {
		const char *name, *sql;
		int n;
	} st[] = {{"cu_groups", MQS_SQL_SYNC_GROUPS, 2}, {"cu_msgs", MQS_SQL_SYNC_MESSAGES, 3}};

	for(size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		PGresult *res = PQprepare(k->conn, st[i].name, st[i].sql, st[i].n, NULL);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if(!ok) return false;
	}
	return true;
}

/* A usable connection, (re)connecting with backoff. False when there is none now (logged). */
static bool catchup__conn(struct catchup *k)
{
	char app[96];

	if(k->conn != NULL && PQstatus(k->conn) == CONNECTION_OK) return true;
	PQfinish(k->conn);
	k->conn = NULL;
	if(!mqs_backoff_due(&k->reconnect, k->p->cfg.reconnect_max_ms)) return false;
	snprintf(app, sizeof(app), "mqsync-catchup:%s", k->p->cfg.node);
	k->conn = mqs_pg_connect(k->p->cfg.conninfo, app, "5", "-c statement_timeout=30000");
	if(PQstatus(k->conn) != CONNECTION_OK || !catchup__prepare(k)) {
		catchup__log(k, "database unreachable");
		PQfinish(k->conn);
		k->conn = NULL;
		return false;
	}
	mqs_backoff_reset(&k->reconnect);
	return true;
}

/* The user's groups (only req.group when set) as syncpage sees them. Returns the malloc'ed array
 * (caller frees; n may be 0) or NULL on failure (logged). */
static struct syncpage_group *catchup__groups(struct catchup *k, const struct mqs_catchup *c, size_t *n)
{
	const char *params[2] = {c->user, c->req.group[0] ? c->req.group : NULL};
	PGresult *res = PQexecPrepared(k->conn, "cu_groups", 2, params, NULL, NULL, 0);
	struct syncpage_group *gs = NULL;

	*n = 0;
	if(PQresultStatus(res) == PGRES_TUPLES_OK) gs = syncpage_groups_read(res, n);
	if(gs == NULL) catchup__log(k, "cannot read memberships");
	PQclear(res);
	return gs;
}

/* The messages of the planned ranges (binary MQS_SQL_MSG_COLUMNS; the caller PQclear()s it), or NULL
 * on failure (logged). */
static PGresult *catchup__fetch(struct catchup *k, const struct syncpage_group *gs, size_t n)
{
	struct mqs_pgarr ids = {0}, los = {0}, his = {0};
	PGresult *res = NULL;

	if(syncpage_ranges(gs, n, &ids, &los, &his)) {
		const char *params[3] = {mqs_pgarr_text(&ids), mqs_pgarr_text(&los), mqs_pgarr_text(&his)};
		res = PQexecPrepared(k->conn, "cu_msgs", 3, params, NULL, NULL, 1);
	}
	if(res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		catchup__log(k, "cannot read messages");
		PQclear(res);
		res = NULL;
	}
	mqs_pgarr_free(&ids);
	mqs_pgarr_free(&los);
	mqs_pgarr_free(&his);
	return res;
}

static int64_t catchup__int8(const PGresult *res, int row, int col)
{
	if(PQgetlength(res, row, col) != 8) return 0;
	return (int64_t)mqs_be64_get(PQgetvalue(res, row, col));
}

/* Row r of a message result as a stored message item, qos 1 (SPEC 3.6). NULL on out of memory.
 * The caller frees it with mqs_item_free. */
static struct mqs_msg *catchup__msg(const PGresult *res, int r)
{
	struct mqs_msg *m = calloc(1, sizeof(*m));
	size_t len = (size_t)PQgetlength(res, r, 5);

	if(m == NULL) return NULL;
	m->hdr.kind = ITEM_MSG;
	m->remote = true; /* no spool record */
	m->status = MSG_STORED;
	m->qos = 1;
	m->id = catchup__int8(res, r, 0);
	m->seq = catchup__int8(res, r, 2);
	snprintf(m->group, sizeof(m->group), "%.*s", PQgetlength(res, r, 1), PQgetvalue(res, r, 1));
	snprintf(m->sender, sizeof(m->sender), "%.*s", PQgetlength(res, r, 3), PQgetvalue(res, r, 3));
	snprintf(m->ts, sizeof(m->ts), "%.*s", PQgetlength(res, r, 4), PQgetvalue(res, r, 4));
	if(!PQgetisnull(res, r, 6))
		snprintf(m->cid, sizeof(m->cid), "%.*s", PQgetlength(res, r, 6), PQgetvalue(res, r, 6));
	m->payload_len = (uint32_t)len;
	m->payload = malloc(len ? len : 1);
	if(m->payload == NULL) {
		free(m);
		return NULL;
	}
	memcpy(m->payload, PQgetvalue(res, r, 5), len);
	return m;
}

/* Turns the fetched rows into c's page: at most SYNCPAGE_MAX_BYTES of payloads (at least one
 * message), moving the positions in gs to what the page holds. False on out of memory. */
static bool catchup__page(struct mqs_catchup *c, struct syncpage_group *gs, size_t n, const PGresult *res)
{
	struct mqs_item **tail = &c->msgs;
	size_t bytes = 0, cursor = 0;

	for(int r = 0; r < PQntuples(res); r++) {
		size_t len = (size_t)PQgetlength(res, r, 5);
		if(c->count > 0 && bytes + len > SYNCPAGE_MAX_BYTES) {
			c->has_more = true;
			break;
		}
		if(!syncpage_returned(gs, n, &cursor, PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1),
		                      catchup__int8(res, r, 2)))
			break;
		struct mqs_msg *m = catchup__msg(res, r);
		if(m == NULL) return false;
		*tail = &m->hdr;
		tail = &m->hdr.next;
		c->count++;
		bytes += len;
	}
	return true;
}

/* Reads c's page (or sets c->failed). */
static void catchup__serve(struct catchup *k, struct mqs_catchup *c)
{
	size_t n = 0;
	struct syncpage_group *gs = NULL;
	PGresult *res = NULL;
	bool ok = catchup__conn(k) && (gs = catchup__groups(k, c, &n)) != NULL;

	if(ok && syncpage_plan(gs, n, c->req.has_token, c->req.tok, c->req.ntok, c->req.limit, &c->has_more) > 0)
		ok = (res = catchup__fetch(k, gs, n)) != NULL && catchup__page(c, gs, n, res);
	if(ok) ok = (c->next = syncpage_next_token(gs, n)) != NULL;
	if(!ok) {
		c->failed = true;
		for(struct mqs_item *m = c->msgs, *next; m != NULL; m = next) {
			next = m->next;
			mqs_item_free(m);
		}
		c->msgs = NULL;
		c->count = 0;
	}
	PQclear(res);
	free(gs);
}

static void *catchup_main(void *arg)
{
	struct catchup *k = arg;
	struct mqs_plugin *p = k->p;

	while(!atomic_load(&p->stopping)) {
		struct mqs_item *it = mqs_queue_take(&p->to_catchup, 500, &p->stopping);
		while(it != NULL) {
			struct mqs_item *next = it->next;
			it->next = NULL;
			if(atomic_load(&p->stopping)) {
				mqs_item_free(it);
			} else {
				catchup__serve(k, (struct mqs_catchup *)it);
				mqs_to_broker(p, it);
			}
			it = next;
		}
	}
	PQfinish(k->conn);
	free(k);
	return NULL;
}

bool mqs_catchup_start(struct mqs_plugin *p)
{
	struct catchup *k = calloc(1, sizeof(*k));

	if(k == NULL) return false;
	k->p = p;
	if(pthread_create(&p->catchup, NULL, catchup_main, k) != 0) {
		free(k);
		mqs_plog(NULL, MOSQ_LOG_ERR, "cannot start the catch-up thread");
		return false;
	}
	p->catchup_started = true;
	return true;
}
