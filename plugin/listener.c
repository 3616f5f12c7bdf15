/* listener: the thread that keeps the broker's state fresh. It LISTENs on mqsync_state and
 * mqsync_msg, loads the whole state after every (re)connect, reloads one user, group or
 * membership per notification, and fetches messages other brokers committed so they are delivered
 * live here too (SPEC 8). Touches only libpq and the queues. */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <mosquitto.h> /* MOSQ_LOG_* levels only: this thread never calls the broker */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "notify.h"
#include "pg.h"
#include "plugin.h"

#define REMOTE_FETCH_MAX 1000 /* per notification; beyond that, clients catch up by sync */
#define MQS_STR2(x)      #x
#define MQS_STR(x)       MQS_STR2(x)

struct listener {
	struct mqs_plugin *p;
	PGconn *conn;
	struct hmap *seen;           /* gid -> int64_t *: highest seq this broker delivered or fetched */
	struct mqs_pgarr own_epochs; /* array literal of this process's origin epochs (int8): the
	                                thread's own copy, made by mqs_listener_start before the
	                                thread exists */
	struct mqs_item *out;        /* results to push, in order */
	struct mqs_item **out_tail;
	time_t last_error_log;
	bool fetch_ok; /* for fetch_one */
};

static void emit(struct listener *l, struct mqs_item *it)
{
	it->next = NULL;
	*l->out_tail = it;
	l->out_tail = &it->next;
}

static void flush_out(struct listener *l)
{
	if(l->out == NULL) return;
	mqs_to_broker(l->p, l->out);
	l->out = NULL;
	l->out_tail = &l->out;
}

static PGresult *query(struct listener *l, const char *sql, int n, const char *const *params, int binary)
{
	PGresult *res = PQexecParams(l->conn, sql, n, NULL, params, NULL, NULL, binary);
	if(PQresultStatus(res) != PGRES_TUPLES_OK) {
		mqs_bglog(l->p, MOSQ_LOG_WARNING, "state query failed: %s", PQresultErrorMessage(res));
		PQclear(res);
		return NULL;
	}
	return res;
}

static void set_seen(struct listener *l, const char *gid, int64_t seq)
{
	int64_t *v = hmap_gets(l->seen, gid);
	if(v != NULL) {
		if(seq > *v) *v = seq;
		return;
	}
	v = malloc(sizeof(*v));
	if(v == NULL) return;
	*v = seq;
	if(!hmap_puts(l->seen, gid, v)) free(v);
}

/* Adds the tokens in res (binary: user_id, token_hash) to their users: to only, when not NULL
 * (res then holds only its tokens), else to the users of st. False on out of memory. */
static bool add_tokens(struct mqs_state *st, struct mqs_user *only, PGresult *res)
{
	for(int r = 0; r < PQntuples(res); r++) {
		char id[MQS_ID_MAX + 1];
		const uint8_t *hash = (const uint8_t *)PQgetvalue(res, r, 1);
		snprintf(id, sizeof(id), "%.*s", PQgetlength(res, r, 0), PQgetvalue(res, r, 0));
		if(PQgetlength(res, r, 1) != MQS_TOKEN_HASH_LEN) continue;
		if(only != NULL ? !mqs_user_add_token(only, hash) : !mqs_state_add_token(st, id, hash)) return false;
	}
	return true;
}

/* Adds the rows of res (text: id, is_admin) to st. False on out of memory. */
static bool add_users(struct mqs_state *st, PGresult *res)
{
	for(int r = 0; r < PQntuples(res); r++) {
		struct mqs_user *u = mqs_user_new(PQgetvalue(res, r, 0), PQgetvalue(res, r, 1)[0] == 't');
		if(u == NULL || !mqs_state_add_user(st, u)) {
			mqs_user_free(u);
			return false;
		}
	}
	return true;
}

/* Adds the rows of res (text: id, last_seq) to st, noting each last_seq as seen. */
static bool add_groups(struct listener *l, struct mqs_state *st, PGresult *res)
{
	for(int r = 0; r < PQntuples(res); r++) {
		int64_t last_seq = mqs_pg_int(res, r, 1);
		if(!mqs_state_add_group(st, PQgetvalue(res, r, 0), last_seq)) return false;
		set_seen(l, PQgetvalue(res, r, 0), last_seq);
	}
	return true;
}

static enum mqs_role role_of(const char *s)
{
	return strcmp(s, "admin") == 0 ? ROLE_ADMIN : ROLE_MEMBER;
}

/* Adds the rows of res (text: group_id, user_id, role) to st. */
static bool add_members(struct mqs_state *st, PGresult *res)
{
	for(int r = 0; r < PQntuples(res); r++) {
		if(!mqs_state_add_member(st, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		                         role_of(PQgetvalue(res, r, 2))))
			return false;
	}
	return true;
}

/* Loads everything in one consistent snapshot. False on any failure (the caller reconnects). */
static bool load_snapshot(struct listener *l)
{
	PGresult *res = NULL;
	struct mqs_snapshot *s = calloc(1, sizeof(*s));
	bool ok;

	if(s == NULL) return false;
	s->hdr.kind = ITEM_SNAPSHOT;
	if((s->state = mqs_state_new()) == NULL) goto fail;
	res = PQexec(l->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
	if(PQresultStatus(res) != PGRES_COMMAND_OK) goto fail;
	PQclear(res);

	if((res = query(l, "SELECT id, is_admin FROM users", 0, NULL, 0)) == NULL) goto fail;
	ok = add_users(s->state, res);
	PQclear(res);
	if(!ok || (res = query(l, "SELECT user_id, token_hash FROM user_tokens", 0, NULL, 1)) == NULL) goto fail;
	ok = add_tokens(s->state, NULL, res);
	PQclear(res);
	if(!ok || (res = query(l, "SELECT id, last_seq FROM groups", 0, NULL, 0)) == NULL) goto fail;
	ok = add_groups(l, s->state, res);
	PQclear(res);
	if(!ok || (res = query(l, "SELECT group_id, user_id, role FROM memberships", 0, NULL, 0)) == NULL) goto fail;
	ok = add_members(s->state, res);
	PQclear(res);
	res = NULL;
	if(!ok) goto fail;
	res = PQexec(l->conn, "COMMIT");
	PQclear(res);
	emit(l, &s->hdr);
	return true;

fail:
	PQclear(res);
	mqs_item_free(&s->hdr);
	return false;
}

static bool reload_user(struct listener *l, const char *id)
{
	const char *params[1] = {id};
	struct mqs_user_change *c = calloc(1, sizeof(*c));
	PGresult *res;

	if(c == NULL) return false;
	c->hdr.kind = ITEM_USER;
	snprintf(c->id, sizeof(c->id), "%s", id);
	if((res = query(l, "SELECT is_admin FROM users WHERE id = $1", 1, params, 0)) == NULL) goto fail;
	c->exists = PQntuples(res) == 1;
	if(c->exists && (c->user = mqs_user_new(id, PQgetvalue(res, 0, 0)[0] == 't')) == NULL) goto fail;
	PQclear(res);
	res = NULL;
	if(c->exists) {
		res = query(l, "SELECT user_id, token_hash FROM user_tokens WHERE user_id = $1", 1, params, 1);
		if(res == NULL || !add_tokens(NULL, c->user, res)) goto fail;
		PQclear(res);
	}
	emit(l, &c->hdr);
	return true;
fail:
	PQclear(res);
	mqs_item_free(&c->hdr);
	return false;
}

static bool reload_group(struct listener *l, const char *id)
{
	const char *params[1] = {id};
	PGresult *res = query(l, "SELECT last_seq FROM groups WHERE id = $1", 1, params, 0);
	if(res == NULL) return false;
	struct mqs_group_change *c = calloc(1, sizeof(*c));
	if(c == NULL) {
		PQclear(res);
		return false;
	}
	c->hdr.kind = ITEM_GROUP;
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->exists = PQntuples(res) == 1;
	if(c->exists) c->last_seq = mqs_pg_int(res, 0, 0);
	PQclear(res);
	emit(l, &c->hdr);
	return true;
}

static bool reload_member(struct listener *l, const char *gid, const char *uid)
{
	const char *params[2] = {gid, uid};
	PGresult *res = query(l, "SELECT role FROM memberships WHERE group_id = $1 AND user_id = $2", 2, params, 0);
	if(res == NULL) return false;
	struct mqs_member_change *c = calloc(1, sizeof(*c));
	if(c == NULL) {
		PQclear(res);
		return false;
	}
	c->hdr.kind = ITEM_MEMBER;
	snprintf(c->group, sizeof(c->group), "%s", gid);
	snprintf(c->user, sizeof(c->user), "%s", uid);
	c->exists = PQntuples(res) == 1;
	c->role = c->exists ? role_of(PQgetvalue(res, 0, 0)) : ROLE_MEMBER;
	PQclear(res);
	emit(l, &c->hdr);
	return true;
}

/* A group's last_seq moved: tell the broker thread, and fetch what other brokers committed. */
static bool on_msg_notify(struct listener *l, const char *gid, int64_t last_seq)
{
	struct mqs_lastseq *ls = calloc(1, sizeof(*ls));
	if(ls == NULL) return false;
	ls->hdr.kind = ITEM_LASTSEQ;
	snprintf(ls->group, sizeof(ls->group), "%s", gid);
	ls->last_seq = last_seq;
	emit(l, &ls->hdr);

	int64_t *seen = hmap_gets(l->seen, gid);
	int64_t from = seen ? *seen : 0;
	if(last_seq <= from) return true;
	char a[24], b[24];
	snprintf(a, sizeof(a), "%lld", (long long)from);
	snprintf(b, sizeof(b), "%lld", (long long)last_seq);
	const char *params[4] = {gid, a, b, mqs_pgarr_text(&l->own_epochs)}; /* not NULL: see start */
	PGresult *res = query(l,
	                      "SELECT id, seq, sender, payload, qos, coalesce(cid, ''), " MQS_SQL_TS(
	                              "created_at") " FROM messages WHERE group_id = $1 AND seq > $2 AND seq <= $3"
	                                            " AND (origin_epoch IS NULL OR origin_epoch <> ALL ($4::int8[]))"
	                                            " ORDER BY seq LIMIT " MQS_STR(REMOTE_FETCH_MAX),
	                      4, params, 1);
	if(res == NULL) return false;
	for(int r = 0; r < PQntuples(res); r++) {
		struct mqs_msg *m = calloc(1, sizeof(*m));
		if(m == NULL) break;
		m->hdr.kind = ITEM_MSG;
		m->remote = true;
		m->status = MSG_STORED;
		m->id = (int64_t)mqs_be64_get(PQgetvalue(res, r, 0));
		m->seq = (int64_t)mqs_be64_get(PQgetvalue(res, r, 1));
		snprintf(m->group, sizeof(m->group), "%s", gid);
		snprintf(m->sender, sizeof(m->sender), "%.*s", PQgetlength(res, r, 2), PQgetvalue(res, r, 2));
		m->payload_len = (uint32_t)PQgetlength(res, r, 3);
		m->payload = malloc(m->payload_len ? m->payload_len : 1);
		if(m->payload == NULL) {
			free(m);
			break;
		}
		memcpy(m->payload, PQgetvalue(res, r, 3), m->payload_len);
		uint16_t q;
		memcpy(&q, PQgetvalue(res, r, 4), 2);
		m->qos = (uint8_t)ntohs(q);
		snprintf(m->cid, sizeof(m->cid), "%.*s", PQgetlength(res, r, 5), PQgetvalue(res, r, 5));
		snprintf(m->ts, sizeof(m->ts), "%.*s", PQgetlength(res, r, 6), PQgetvalue(res, r, 6));
		emit(l, &m->hdr);
	}
	PQclear(res);
	set_seen(l, gid, last_seq);
	return true;
}

/* Handles one mqsync_state notification. False if the connection should be reset (a query
 * failed); a payload that is not one of ours is ignored. */
static bool on_notify(struct listener *l, const PGnotify *n)
{
	char a[MQS_ID_MAX + 1], b[MQS_ID_MAX + 1];

	switch(mqs_notify_state_parse(n->extra, a, b)) {
	case MQS_NOTIFY_USER:
		return reload_user(l, a);
	case MQS_NOTIFY_GROUP:
		return reload_group(l, a);
	case MQS_NOTIFY_MEMBER:
		return reload_member(l, a, b);
	default:
		return true;
	}
}

/* Notes last_seq for gid in msgs (gid -> int64_t *), keeping the highest. */
static void note_msg(struct hmap *msgs, const char *gid, int64_t seq)
{
	int64_t *v = hmap_gets(msgs, gid);
	if(v != NULL) {
		if(seq > *v) *v = seq;
	} else if((v = malloc(sizeof(*v))) != NULL) {
		*v = seq;
		if(!hmap_puts(msgs, gid, v)) free(v);
	}
	/* out of memory: that group's commits are seen at its next notification or by sync */
}

static void free_ptr(void *v)
{
	free(v);
}

static void fetch_one(const void *key, size_t keylen, void *value, void *arg)
{
	struct listener *l = arg;
	char gid[MQS_ID_MAX + 1];
	(void)keylen;
	snprintf(gid, sizeof(gid), "%s", (const char *)key);
	if(l->fetch_ok) l->fetch_ok = on_msg_notify(l, gid, *(int64_t *)value);
}

/* Takes every pending notification: membership, user and token changes are applied first (they
 * bound how long a revoked user keeps access); then, per group, only the highest last_seq is
 * fetched, however many commits were announced. False if a query failed. */
static bool handle_notifications(struct listener *l)
{
	struct hmap *msgs = hmap_new(free_ptr);
	PGnotify *n;
	bool ok = msgs != NULL;

	while((n = PQnotifies(l->conn)) != NULL) {
		char gid[MQS_ID_MAX + 1];
		int64_t seq;
		if(strcmp(n->relname, MQS_CHAN_MSG) != 0) {
			if(ok) ok = on_notify(l, n);
		} else if(ok && mqs_notify_msg_parse(n->extra, gid, &seq)) {
			note_msg(msgs, gid, seq);
		}
		PQfreemem(n);
	}
	if(ok) {
		l->fetch_ok = true;
		hmap_each(msgs, fetch_one, l);
		ok = l->fetch_ok;
	}
	hmap_free(msgs);
	return ok;
}

static bool connect_and_load(struct listener *l)
{
	char app[96];
	snprintf(app, sizeof(app), "mqsync-listener:%s", l->p->cfg.node);
	l->conn = mqs_pg_connect(l->p->cfg.conninfo, app, "5", NULL);
	if(PQstatus(l->conn) == CONNECTION_OK) {
		PGresult *res = PQexec(l->conn, "LISTEN " MQS_CHAN_STATE "; LISTEN " MQS_CHAN_MSG);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		/* LISTEN first, then load: a change between the two is both in the snapshot and notified. */
		if(ok && load_snapshot(l)) {
			flush_out(l);
			return true;
		}
	}
	time_t now = time(NULL);
	if(now - l->last_error_log >= 10) {
		l->last_error_log = now;
		mqs_bglog(l->p, MOSQ_LOG_WARNING, "cannot load users and groups: %s", PQerrorMessage(l->conn));
	}
	PQfinish(l->conn);
	l->conn = NULL;
	return false;
}

/* Sleeps ms milliseconds in short steps; false if the plugin is stopping. */
static bool nap(struct mqs_plugin *p, long ms)
{
	while(ms > 0 && !atomic_load(&p->stopping)) {
		struct timespec ts = {0, (ms > 100 ? 100 : ms) * 1000000L};
		nanosleep(&ts, NULL);
		ms -= 100;
	}
	return !atomic_load(&p->stopping);
}

/* Frees the thread's state. Accepts NULL. */
static void listener_free(struct listener *l)
{
	if(l == NULL) return;
	if(l->conn != NULL) PQfinish(l->conn);
	hmap_free(l->seen);
	mqs_pgarr_free(&l->own_epochs);
	free(l);
}

/* The thread: owns arg (its struct listener) and frees it on the way out. */
static void *listener_main(void *arg)
{
	struct listener *l = arg;
	struct mqs_plugin *p = l->p;
	struct mqs_backoff reconnect = {0};

	while(!atomic_load(&p->stopping)) {
		if(l->conn == NULL) {
			if(!connect_and_load(l)) {
				if(!nap(p, mqs_backoff_step(&reconnect, p->cfg.reconnect_max_ms))) break;
				continue;
			}
			mqs_backoff_reset(&reconnect);
		}
		struct pollfd pfd = {PQsocket(l->conn), POLLIN, 0};
		if(poll(&pfd, 1, 200) < 0) continue;
		bool ok = PQconsumeInput(l->conn) == 1;
		if(ok) ok = handle_notifications(l);
		flush_out(l);
		if(!ok || PQstatus(l->conn) != CONNECTION_OK) {
			mqs_bglog(p, MOSQ_LOG_WARNING, "state connection lost: %s", PQerrorMessage(l->conn));
			PQfinish(l->conn);
			l->conn = NULL;
		}
	}
	flush_out(l);
	listener_free(l);
	return NULL;
}

bool mqs_listener_start(struct mqs_plugin *p, const struct mqs_epochs *own)
{
	struct listener *l = calloc(1, sizeof(*l));

	if(l == NULL) return false;
	l->p = p;
	l->out_tail = &l->out;
	l->seen = hmap_new(free_ptr);
	/* The hand-over: the thread reads own only through this copy, made before it starts, of the
	 * epochs as messages.origin_epoch stores them (int8). */
	for(int i = 0; i < own->n; i++) mqs_pgarr_add_int(&l->own_epochs, (int64_t)mqs_be64_get(own->e[i]));
	if(l->seen == NULL || mqs_pgarr_text(&l->own_epochs) == NULL ||
	   pthread_create(&p->listener, NULL, listener_main, l) != 0) {
		listener_free(l);
		return false;
	}
	p->listener_started = true;
	return true;
}
