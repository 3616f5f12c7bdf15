/* listener: the thread that keeps the broker's state fresh. It LISTENs on mqsync_state and
 * mqsync_msg, loads the whole state after every (re)connect, then takes notifications in rounds:
 * every one that has arrived, each change once, reloaded with one set-based statement per kind
 * (users, memberships, groups), revocations and removals first; and it fetches messages other
 * brokers committed so they are delivered live here too (SPEC 8). Touches only libpq and the
 * queues. */
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

/* Adds the tokens in res (binary: user_id, token_hash) to the users of st. False on out of memory. */
static bool add_tokens(struct mqs_state *st, PGresult *res)
{
	for(int r = 0; r < PQntuples(res); r++) {
		char id[MQS_ID_MAX + 1];
		const uint8_t *hash = (const uint8_t *)PQgetvalue(res, r, 1);
		snprintf(id, sizeof(id), "%.*s", PQgetlength(res, r, 0), PQgetvalue(res, r, 0));
		if(PQgetlength(res, r, 1) != MQS_TOKEN_HASH_LEN) continue;
		if(!mqs_state_add_token(st, id, hash)) return false;
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
	ok = add_tokens(s->state, res);
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

/* One ITEM_MEMBER for the broker thread. False on out of memory. */
static bool emit_member(struct listener *l, const char *gid, const char *uid, bool exists, enum mqs_role role)
{
	struct mqs_member_change *c = calloc(1, sizeof(*c));
	if(c == NULL) return false;
	c->hdr.kind = ITEM_MEMBER;
	snprintf(c->group, sizeof(c->group), "%s", gid);
	snprintf(c->user, sizeof(c->user), "%s", uid);
	c->exists = exists;
	c->role = exists ? role : ROLE_MEMBER;
	emit(l, &c->hdr);
	return true;
}

/* Reloads the users in ids (a text array literal) in one statement and emits one ITEM_USER each:
 * the user with all its tokens, or gone. False if the query failed or memory ran out. */
static bool reload_users(struct listener *l, const char *ids)
{
	const char *params[1] = {ids};
	/* Binary: id bytes, is_admin one byte (NULL: the user is gone), token_hash (NULL: none). */
	PGresult *res = query(l,
	                      "SELECT c.id, u.is_admin, t.token_hash FROM unnest($1::text[]) AS c(id)"
	                      " LEFT JOIN users u ON u.id = c.id LEFT JOIN user_tokens t ON t.user_id = u.id"
	                      " ORDER BY c.id",
	                      1, params, 1);
	struct mqs_user_change *c = NULL;
	bool ok = res != NULL;

	for(int r = 0; ok && r < PQntuples(res); r++) {
		char id[MQS_ID_MAX + 1];
		snprintf(id, sizeof(id), "%.*s", PQgetlength(res, r, 0), PQgetvalue(res, r, 0));
		if(c == NULL || strcmp(c->id, id) != 0) {
			if(c != NULL) emit(l, &c->hdr);
			if((c = calloc(1, sizeof(*c))) == NULL) {
				ok = false;
				break;
			}
			c->hdr.kind = ITEM_USER;
			snprintf(c->id, sizeof(c->id), "%s", id);
			c->exists = !PQgetisnull(res, r, 1);
			if(c->exists && (c->user = mqs_user_new(id, PQgetvalue(res, r, 1)[0] != 0)) == NULL) ok = false;
		}
		if(ok && c->exists && !PQgetisnull(res, r, 2) && PQgetlength(res, r, 2) == MQS_TOKEN_HASH_LEN)
			ok = mqs_user_add_token(c->user, (const uint8_t *)PQgetvalue(res, r, 2));
	}
	if(c != NULL) {
		if(ok)
			emit(l, &c->hdr);
		else
			mqs_item_free(&c->hdr);
	}
	PQclear(res);
	return ok;
}

/* Reloads the groups in ids (a text array literal) in one statement: one ITEM_GROUP each. */
static bool reload_groups(struct listener *l, const char *ids)
{
	const char *params[1] = {ids};
	PGresult *res =
	        query(l, "SELECT c.id, g.last_seq FROM unnest($1::text[]) AS c(id) LEFT JOIN groups g ON g.id = c.id",
	              1, params, 0);
	bool ok = res != NULL;

	for(int r = 0; ok && r < PQntuples(res); r++) {
		struct mqs_group_change *c = calloc(1, sizeof(*c));
		if(c == NULL) {
			ok = false;
			break;
		}
		c->hdr.kind = ITEM_GROUP;
		snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(res, r, 0));
		c->exists = !PQgetisnull(res, r, 1);
		if(c->exists) c->last_seq = mqs_pg_int(res, r, 1);
		emit(l, &c->hdr);
	}
	PQclear(res);
	return ok;
}

/* The memberships of the (gids[i], uids[i]) pairs (text array literals), in one statement: rows of
 * group_id, user_id, role (NULL: no such membership). NULL if the query failed. */
static PGresult *load_members(struct listener *l, const char *gids, const char *uids)
{
	const char *params[2] = {gids, uids};
	return query(l,
	             "SELECT c.g, c.u, m.role FROM unnest($1::text[], $2::text[]) AS c(g, u)"
	             " LEFT JOIN memberships m ON m.group_id = c.g AND m.user_id = c.u",
	             2, params, 0);
}

/* Emits the rows of res (load_members) that are removals (gone: true) or the others. */
static bool emit_members(struct listener *l, const PGresult *res, bool gone)
{
	for(int r = 0; r < PQntuples(res); r++) {
		bool exists = !PQgetisnull(res, r, 2);
		if(exists == gone) continue;
		if(!emit_member(l, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1), exists,
		                exists ? role_of(PQgetvalue(res, r, 2)) : ROLE_MEMBER))
			return false;
	}
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

#define DRAIN_MAX 100000 /* notifications taken in one round before acting on them */
#define DRAIN_MS  20     /* time spent taking them, at most, before acting */

/* What one round of notifications announced: each user, group, membership once, and per group
 * the highest last_seq. The state changes become arrays for set-based reloads. */
struct changes {
	struct mqs_pgarr users, groups, member_g, member_u;
	struct hmap *seen; /* "u:ID", "g:ID", "m:GID:UID" -> (void *)1: the changes noted (':' is in no id) */
	struct hmap *msgs; /* gid -> int64_t * */
	bool oom;
};

/* Notes one notification. A payload that is not one of ours is ignored. */
static void note(struct changes *ch, const PGnotify *n)
{
	char a[MQS_ID_MAX + 1], b[MQS_ID_MAX + 1], key[2 * MQS_ID_MAX + 4];
	int64_t seq;
	enum mqs_notify_state kind;

	if(strcmp(n->relname, MQS_CHAN_MSG) == 0) {
		if(mqs_notify_msg_parse(n->extra, a, &seq)) note_msg(ch->msgs, a, seq);
		return;
	}
	kind = mqs_notify_state_parse(n->extra, a, b);
	if(kind == MQS_NOTIFY_BAD) return;
	snprintf(key, sizeof(key), "%c:%s%s%s",
	         kind == MQS_NOTIFY_USER    ? 'u'
	         : kind == MQS_NOTIFY_GROUP ? 'g'
	                                    : 'm',
	         a, kind == MQS_NOTIFY_MEMBER ? ":" : "", kind == MQS_NOTIFY_MEMBER ? b : "");
	if(hmap_gets(ch->seen, key) != NULL) return;
	if(!hmap_puts(ch->seen, key, (void *)1)) {
		ch->oom = true;
		return;
	}
	if(kind == MQS_NOTIFY_USER) {
		mqs_pgarr_add_str(&ch->users, a, strlen(a));
	} else if(kind == MQS_NOTIFY_GROUP) {
		mqs_pgarr_add_str(&ch->groups, a, strlen(a));
	} else {
		mqs_pgarr_add_str(&ch->member_g, a, strlen(a));
		mqs_pgarr_add_str(&ch->member_u, b, strlen(b));
	}
}

/* Takes every notification that has arrived (reading the socket again while more is there, up to
 * DRAIN_MAX or DRAIN_MS). False if the connection broke. */
static bool drain(struct listener *l, struct changes *ch)
{
	int64_t end = mqs_now_ms(CLOCK_MONOTONIC) + DRAIN_MS;
	size_t taken = 0;

	for(;;) {
		PGnotify *n;
		while((n = PQnotifies(l->conn)) != NULL) {
			note(ch, n);
			PQfreemem(n);
			taken++;
		}
		if(taken >= DRAIN_MAX || mqs_now_ms(CLOCK_MONOTONIC) >= end) return true;
		struct pollfd pfd = {PQsocket(l->conn), POLLIN, 0};
		if(poll(&pfd, 1, 0) <= 0) return true;
		if(PQconsumeInput(l->conn) != 1) return false;
	}
}

/* The state changes of one round, in the order that bounds how long access outlives its
 * revocation (SPEC 3: within 1 s, however many changes are announced at once): users and their
 * tokens, then membership removals, handed to the broker thread at once; then groups and the other
 * membership changes. One statement each, whatever the number of changes. False if a query failed
 * or memory ran out (the caller reconnects and reloads everything). */
static bool apply_changes(struct listener *l, struct changes *ch)
{
	const char *users = mqs_pgarr_text(&ch->users), *groups = mqs_pgarr_text(&ch->groups);
	const char *mg = mqs_pgarr_text(&ch->member_g), *mu = mqs_pgarr_text(&ch->member_u);
	PGresult *members = NULL;
	bool ok;

	if(ch->oom || users == NULL || groups == NULL || mg == NULL || mu == NULL) return false;
	ok = ch->users.n == 0 || reload_users(l, users);
	if(ok && ch->member_g.n > 0) {
		members = load_members(l, mg, mu);
		ok = members != NULL && emit_members(l, members, true);
	}
	flush_out(l);
	if(ok && ch->groups.n > 0) ok = reload_groups(l, groups);
	if(ok && members != NULL) ok = emit_members(l, members, false);
	PQclear(members);
	return ok;
}

/* Takes every pending notification, applies the state changes (apply_changes), then fetches, per
 * group, only the highest last_seq announced, however many commits were. False if a query failed. */
static bool handle_notifications(struct listener *l)
{
	struct changes ch = {.seen = hmap_new(NULL), .msgs = hmap_new(free_ptr)};
	bool ok = ch.seen != NULL && ch.msgs != NULL && drain(l, &ch) && apply_changes(l, &ch);

	if(ok) {
		l->fetch_ok = true;
		hmap_each(ch.msgs, fetch_one, l);
		ok = l->fetch_ok;
	}
	hmap_free(ch.seen);
	hmap_free(ch.msgs);
	mqs_pgarr_free(&ch.users);
	mqs_pgarr_free(&ch.groups);
	mqs_pgarr_free(&ch.member_g);
	mqs_pgarr_free(&ch.member_u);
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
