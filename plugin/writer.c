/* writer: the database writer thread. Stores spooled messages in batches (one transaction, binary
 * COPY into a staging table, per-group seq assigned under the group's row lock), applies receipts
 * and presence, reconnects with backoff, and hands every result back to the broker thread.
 * Touches only libpq, its own state and the queues (never the broker API). */
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <mosquitto.h> /* MOSQ_LOG_* levels only: this thread never calls the broker */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "plugin.h"

#define BATCH_BYTES (16u * 1024 * 1024)

struct writer {
	struct mqs_plugin *p;
	PGconn *conn;
	bool presence_reset; /* this node's stale rows from an earlier run were cleared */
	bool was_down;
	long backoff_ms;
	int64_t next_connect_ms; /* monotonic; no connection attempt before it */
	int64_t retry_at_ms;     /* monotonic; after a failed statement, no retry before it */
	time_t last_error_log;
	/* pending messages, oldest first: a chain of items (no allocation, so nothing to fail) */
	struct mqs_item *msg_head, *msg_tail;
	size_t nmsgs;
	struct mqs_msg **batch; /* batch_max slots, reused */
	struct hmap *receipts;  /* "gid\0uid" -> struct mqs_receipt *, coalesced */
	struct hmap *presence;  /* uid -> struct mqs_presence *, latest count */
	bool heartbeat;
	/* COPY buffer, reused */
	uint8_t *buf;
	size_t buflen, bufcap;
};

static bool prepare_all(struct writer *w);

static void item_free_cb(void *v)
{
	mqs_item_free(v);
}

static bool has_pending(const struct writer *w)
{
	return w->msg_head != NULL || hmap_count(w->receipts) > 0 || hmap_count(w->presence) > 0 || w->heartbeat;
}

/* Log at most once per 10 s for repeated failures. */
static void log_error(struct writer *w, const char *what, const char *detail)
{
	time_t now = time(NULL);
	if(now - w->last_error_log < 10) return;
	w->last_error_log = now;
	size_t n = strlen(detail);
	while(n > 0 && (detail[n - 1] == '\n' || detail[n - 1] == ' ')) n--;
	mqs_bglog(w->p, MOSQ_LOG_WARNING, "%s: %.*s (%zu messages waiting; retrying)", what, (int)n, detail, w->nmsgs);
}

/* Takes ownership of a chain of items, merging receipts and presence. */
static void absorb(struct writer *w, struct mqs_item *it)
{
	while(it != NULL) {
		struct mqs_item *next = it->next;
		it->next = NULL;
		if(it->kind == ITEM_MSG) {
			if(w->msg_tail)
				w->msg_tail->next = it;
			else
				w->msg_head = it;
			w->msg_tail = it;
			w->nmsgs++;
		} else if(it->kind == ITEM_RECEIPT) {
			struct mqs_receipt *r = (struct mqs_receipt *)it;
			char key[2 * MQS_ID_MAX + 2];
			size_t gl = strlen(r->group), ul = strlen(r->user);
			memcpy(key, r->group, gl + 1);
			memcpy(key + gl + 1, r->user, ul);
			struct mqs_receipt *old = hmap_get(w->receipts, key, gl + 1 + ul);
			if(old != NULL) {
				if(r->delivered > old->delivered) old->delivered = r->delivered;
				if(r->read > old->read) old->read = r->read;
				mqs_item_free(it);
			} else if(!hmap_put(w->receipts, key, gl + 1 + ul, r)) {
				mqs_item_free(it);
			}
		} else if(it->kind == ITEM_PRESENCE) {
			struct mqs_presence *pr = (struct mqs_presence *)it;
			if(!hmap_puts(w->presence, pr->user, pr)) mqs_item_free(it);
		} else if(it->kind == ITEM_HEARTBEAT) {
			w->heartbeat = true;
			mqs_item_free(it);
		} else {
			mqs_item_free(it);
		}
		it = next;
	}
}

static bool exec_ok(struct writer *w, const char *sql, const char *what)
{
	PGresult *res = PQexec(w->conn, sql);
	ExecStatusType st = PQresultStatus(res);
	bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
	if(!ok) log_error(w, what, PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* After a failed statement: roll back and retry a little later, or drop a broken connection. */
static void recover(struct writer *w)
{
	if(w->conn == NULL) return;
	w->retry_at_ms = mono_ms() + 200;
	if(PQstatus(w->conn) != CONNECTION_OK || PQpipelineStatus(w->conn) != PQ_PIPELINE_OFF) {
		PQfinish(w->conn); /* broken, or stuck mid-pipeline: start over on a new connection */
		w->conn = NULL;
		return;
	}
	PGresult *res = PQexec(w->conn, "ROLLBACK");
	PQclear(res);
}

/* Connects if needed, at most once per backoff period (doubling up to reconnect_max_ms). */
static bool ensure_conn(struct writer *w)
{
	if(w->conn != NULL && PQstatus(w->conn) == CONNECTION_OK) return true;
	if(w->conn != NULL) {
		PQfinish(w->conn);
		w->conn = NULL;
	}
	if(mono_ms() < w->next_connect_ms) return false;
	w->next_connect_ms = mono_ms() + w->backoff_ms;
	w->backoff_ms = w->backoff_ms * 2 > w->p->cfg.reconnect_max_ms ? w->p->cfg.reconnect_max_ms : w->backoff_ms * 2;
	char app[96];
	snprintf(app, sizeof(app), "mqsync-writer:%s", w->p->cfg.node);
	/* Keepalives and a TCP user timeout: a silent network partition is detected in ~10 s instead
	 * of hanging the writer; statement_timeout bounds a stuck statement. */
	const char *keys[] = {"dbname",           "connect_timeout",
	                      "application_name", "keepalives",
	                      "keepalives_idle",  "keepalives_interval",
	                      "keepalives_count", "tcp_user_timeout",
	                      "options",          NULL};
	const char *vals[] = {w->p->cfg.conninfo,
	                      "5",
	                      app,
	                      "1",
	                      "5",
	                      "2",
	                      "3",
	                      "10000",
	                      "-c statement_timeout=30000 -c lock_timeout=10000",
	                      NULL};
	w->conn = PQconnectdbParams(keys, vals, 1);
	if(PQstatus(w->conn) != CONNECTION_OK) {
		log_error(w, "database unreachable", PQerrorMessage(w->conn));
		PQfinish(w->conn);
		w->conn = NULL;
		w->was_down = true;
		return false;
	}
	if(!prepare_all(w)) {
		PQfinish(w->conn);
		w->conn = NULL;
		return false;
	}
	if(!w->presence_reset) {
		const char *params[1] = {w->p->cfg.node};
		PGresult *res = PQexecParams(w->conn, "UPDATE presence SET connections = 0 WHERE node = $1", 1, NULL,
		                             params, NULL, NULL, 0);
		w->presence_reset = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
	}
	if(w->was_down) mqs_bglog(w->p, MOSQ_LOG_NOTICE, "database reachable again; draining %zu messages", w->nmsgs);
	w->was_down = false;
	w->backoff_ms = 100;
	w->next_connect_ms = 0;
	w->last_error_log = 0;
	return true;
}

/* ---- messages ------------------------------------------------------------------------------- */

/* Statements prepared on every new connection (see prepare_all). */
static const struct {
	const char *name;
	const char *sql;
} prepared[] = {
        /* Replay dedupe: the highest counter committed per epoch (docs/schema.md, spool_progress). */
        {"progress", "SELECT epoch, upto FROM spool_progress WHERE epoch = ANY($1::int8[])"},
        /* Client resend dedupe, only for messages that carry a cid. */
        {"cids", "SELECT m.sender, m.cid FROM messages m JOIN unnest($1::text[], $2::text[]) AS c(s, k)"
                 " ON m.sender = c.s AND m.cid = c.k"},
        /* Row locks in id order: concurrent writers cannot deadlock, and hold them to commit. */
        {"lock", "SELECT id FROM groups WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE"},
        {"bump", "UPDATE groups g SET last_seq = g.last_seq + c.n FROM unnest($1::text[], $2::int8[]) AS c(id, n)"
                 " WHERE g.id = c.id RETURNING g.id, g.last_seq - c.n,"
                 " to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"},
        {"ids", "SELECT nextval('messages_id_seq') FROM generate_series(1, $1::int4)"},
        {"upto", "INSERT INTO spool_progress (epoch, upto, node) SELECT e, u, $3 FROM unnest($1::int8[], $2::int8[])"
                 " AS t(e, u) ON CONFLICT (epoch) DO UPDATE"
                 " SET upto = greatest(spool_progress.upto, EXCLUDED.upto), updated_at = now()"},
};

static bool prepare_all(struct writer *w)
{
	for(size_t i = 0; i < sizeof(prepared) / sizeof(prepared[0]); i++) {
		PGresult *res = PQprepare(w->conn, prepared[i].name, prepared[i].sql, 0, NULL);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok) log_error(w, "cannot prepare statements", PQresultErrorMessage(res));
		PQclear(res);
		if(!ok) return false;
	}
	return true;
}

static bool buf_reserve(struct writer *w, size_t more)
{
	if(w->buflen + more <= w->bufcap) return true;
	size_t cap = w->bufcap ? w->bufcap : 65536;
	while(cap < w->buflen + more) cap *= 2;
	uint8_t *b = realloc(w->buf, cap);
	if(b == NULL) return false;
	w->buf = b;
	w->bufcap = cap;
	return true;
}

static void put16(struct writer *w, int16_t v)
{
	uint16_t n = htons((uint16_t)v);
	memcpy(w->buf + w->buflen, &n, 2);
	w->buflen += 2;
}

static void put32(struct writer *w, int32_t v)
{
	uint32_t n = htonl((uint32_t)v);
	memcpy(w->buf + w->buflen, &n, 4);
	w->buflen += 4;
}

static void put64(struct writer *w, int64_t v)
{
	put32(w, (int32_t)((uint64_t)v >> 32));
	put32(w, (int32_t)((uint64_t)v & 0xffffffffu));
}

static void put_field(struct writer *w, const void *data, size_t len)
{
	put32(w, (int32_t)len);
	memcpy(w->buf + w->buflen, data, len);
	w->buflen += len;
}

static int64_t be64(const uint8_t *b)
{
	uint64_t v = 0;
	for(int i = 0; i < 8; i++) v = (v << 8) | b[i];
	return (int64_t)v;
}

/* Encodes the stored messages of ms[0..n) as a binary COPY stream for messages. */
static bool encode_copy(struct writer *w, struct mqs_msg **ms, size_t n)
{
	static const uint8_t header[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
	                                 0,   0,   0,   0,   0,   0,   0,    0,    0};

	w->buflen = 0;
	if(!buf_reserve(w, sizeof(header) + 2)) return false;
	memcpy(w->buf, header, sizeof(header));
	w->buflen = sizeof(header);
	for(size_t i = 0; i < n; i++) {
		struct mqs_msg *m = ms[i];
		if(m->status != MSG_STORED) continue;
		size_t gl = strlen(m->group), sl = strlen(m->sender), cl = strlen(m->cid);
		if(!buf_reserve(w, 2 + 8 * 4 + 8 + gl + 8 + sl + m->payload_len + 2 + cl + 8)) return false;
		put16(w, 8);
		put32(w, 8);
		put64(w, m->id);
		put_field(w, m->group, gl);
		put32(w, 8);
		put64(w, m->seq);
		put_field(w, m->sender, sl);
		put_field(w, m->payload, m->payload_len);
		put32(w, 2);
		put16(w, m->qos);
		if(cl > 0)
			put_field(w, m->cid, cl);
		else
			put32(w, -1);
		put32(w, 8);
		put64(w, be64(m->origin));
	}
	if(!buf_reserve(w, 2)) return false;
	put16(w, -1);
	return true;
}

/* Appends s to a PostgreSQL array literal under construction, double-quoted with " and \
 * escaped: unquoted, an id such as "null" would be read as SQL NULL, and a cid may hold anything. */
static bool arr_add(char **arr, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	size_t need = *len + 2 * n + 5;
	if(need > *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		while(c < need) c *= 2;
		char *a = realloc(*arr, c);
		if(a == NULL) return false;
		*arr = a;
		*cap = c;
	}
	(*arr)[*len] = *len == 0 ? '{' : ',';
	(*len)++;
	(*arr)[(*len)++] = '"';
	for(size_t i = 0; i < n; i++) {
		if(s[i] == '"' || s[i] == '\\') (*arr)[(*len)++] = '\\';
		(*arr)[(*len)++] = s[i];
	}
	(*arr)[(*len)++] = '"';
	(*arr)[*len] = '}';
	(*arr)[*len + 1] = '\0';
	return true;
}

struct arrays {
	char *a[4];
	size_t len[4], cap[4];
	bool ok;
};

static void add(struct arrays *x, int i, const char *s)
{
	x->ok = x->ok && arr_add(&x->a[i], &x->len[i], &x->cap[i], s);
}

static void add_int(struct arrays *x, int i, int64_t v)
{
	char num[24];
	snprintf(num, sizeof(num), "%lld", (long long)v);
	add(x, i, num);
}

static void arrays_free(struct arrays *x)
{
	for(int i = 0; i < 4; i++) free(x->a[i]);
	memset(x, 0, sizeof(*x));
	x->ok = true;
}

struct batch_group {
	int64_t n;    /* messages to store */
	int64_t next; /* next seq to hand out */
	bool exists;
};

static void free_ptr(void *v)
{
	free(v);
}

static bool copy_rows(struct writer *w, struct mqs_msg **ms, size_t n)
{
	PGresult *res;

	if(!encode_copy(w, ms, n)) {
		log_error(w, "cannot store messages", "out of memory encoding a batch");
		return false;
	}
	res = PQexec(w->conn, "COPY messages (id, group_id, seq, sender, payload, qos, cid, origin_epoch)"
	                      " FROM STDIN (FORMAT binary)");
	bool ok = PQresultStatus(res) == PGRES_COPY_IN;
	if(!ok) log_error(w, "cannot store messages", PQresultErrorMessage(res));
	PQclear(res);
	if(!ok) return false;
	if(PQputCopyData(w->conn, (const char *)w->buf, (int)w->buflen) != 1 || PQputCopyEnd(w->conn, NULL) != 1) {
		log_error(w, "cannot store messages", PQerrorMessage(w->conn));
		return false;
	}
	while((res = PQgetResult(w->conn)) != NULL) {
		if(PQresultStatus(res) != PGRES_COMMAND_OK) {
			log_error(w, "cannot store messages", PQresultErrorMessage(res));
			ok = false;
		}
		PQclear(res);
	}
	return ok;
}

#define CID_KEY_MAX (MQS_ID_MAX + 1 + 64)

/* Writes the map key "sender\0cid" into key (CID_KEY_MAX bytes); returns its length, 0 if either
 * part is too long to be one of ours. */
static size_t cid_key(char *key, const char *sender, const char *cid)
{
	size_t sl = strlen(sender), cl = strlen(cid);
	if(sl > MQS_ID_MAX || cl > 64) return 0;
	memcpy(key, sender, sl + 1);
	memcpy(key + sl + 1, cid, cl);
	return sl + 1 + cl;
}

/* ---- one batch, pipelined ------------------------------------------------------------------ */

/* Reads one pipelined query's result and the NULL that ends it. NULL if the query failed or was
 * skipped after an earlier failure in the pipeline. */
static PGresult *pipe_result(struct writer *w, ExecStatusType want)
{
	PGresult *res = PQgetResult(w->conn);
	PGresult *end = res ? PQgetResult(w->conn) : NULL;
	PQclear(end);
	if(res != NULL && PQresultStatus(res) == want) return res;
	if(res != NULL && PQresultStatus(res) != PGRES_PIPELINE_ABORTED) {
		log_error(w, "cannot store messages", PQresultErrorMessage(res));
	}
	PQclear(res);
	return NULL;
}

/* Consumes what is left up to the pipeline's sync point and leaves pipeline mode. */
static bool pipe_finish(struct writer *w)
{
	for(int guard = 0; guard < 64; guard++) {
		PGresult *res = PQgetResult(w->conn);
		if(res == NULL) {
			if(PQstatus(w->conn) != CONNECTION_OK) return false;
			continue;
		}
		bool sync = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
		PQclear(res);
		if(sync) return PQexitPipelineMode(w->conn) == 1;
	}
	return false;
}

static bool send_prepared(struct writer *w, const char *name, int n, const char *const *params)
{
	return PQsendQueryPrepared(w->conn, name, n, params, NULL, NULL, 0) == 1;
}

/* One round trip for BEGIN, the replay and resend checks, the group locks, the seq reservation and
 * the ids of the messages still MSG_PENDING, assuming (as is almost always true) that none of them
 * is a duplicate. Returns 1 when the batch is ready to COPY (statuses, seqs, ids, ts set); -1 when
 * duplicates turned up: they are marked MSG_DUPLICATE and the transaction rolled back, so the
 * caller calls again for the rest; 2 when nothing is left to store (no transaction open); 0 on
 * failure. Duplicates are replays already committed (counter <= spool_progress.upto of their
 * epoch) and client resends ((sender, cid) stored, or repeated earlier in the batch). */
static int reserve_pipelined(struct writer *w, struct mqs_msg **ms, size_t n, size_t *stored)
{
	struct arrays ep = {.ok = true}, cid = {.ok = true}, grp = {.ok = true};
	struct hmap *groups = hmap_new(free_ptr), *seen = hmap_new(NULL);
	char count[24];
	int rc = 0, dups = 0;
	bool piped = false;
	size_t candidates = 0;

	*stored = 0;
	if(groups == NULL || seen == NULL) goto out;
	for(size_t i = 0; i < n; i++) {
		struct mqs_msg *m = ms[i];
		if(m->status != MSG_PENDING) continue;
		int64_t e = be64(m->origin);
		if(ep.a[0] == NULL || e != be64(ms[i - 1]->origin)) add_int(&ep, 0, e); /* one per run of an epoch */
		if(m->cid[0] != '\0') {
			char key[CID_KEY_MAX];
			size_t kl = cid_key(key, m->sender, m->cid);
			if(hmap_get(seen, key, kl) != NULL) {
				m->status = MSG_DUPLICATE; /* repeated within the batch */
				continue;
			}
			if(!hmap_put(seen, key, kl, m)) goto out;
			add(&cid, 0, m->sender);
			add(&cid, 1, m->cid);
		}
		struct batch_group *g = hmap_gets(groups, m->group);
		if(g == NULL) {
			if((g = calloc(1, sizeof(*g))) == NULL || !hmap_puts(groups, m->group, g)) {
				free(g);
				goto out;
			}
		}
		g->n++;
		candidates++;
	}
	for(size_t i = 0; i < n; i++) { /* groups with their counts, in first-seen order */
		struct batch_group *g = ms[i]->status == MSG_PENDING ? hmap_gets(groups, ms[i]->group) : NULL;
		if(g == NULL || g->next != 0) continue;
		g->next = -1;
		add(&grp, 0, ms[i]->group);
		add_int(&grp, 1, g->n);
	}
	if(candidates == 0) {
		rc = 2;
		goto out;
	}
	if(!ep.ok || !cid.ok || !grp.ok) goto out;
	snprintf(count, sizeof(count), "%zu", candidates);

	const char *p_ep[1] = {ep.a[0]}, *p_cid[2] = {cid.a[0], cid.a[1]}, *p_lock[1] = {grp.a[0]};
	const char *p_bump[2] = {grp.a[0], grp.a[1]}, *p_ids[1] = {count};
	if(PQenterPipelineMode(w->conn) != 1) goto out;
	piped = true;
	if(PQsendQueryParams(w->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) != 1 ||
	   !send_prepared(w, "progress", 1, p_ep) || (cid.a[0] != NULL && !send_prepared(w, "cids", 2, p_cid)) ||
	   !send_prepared(w, "lock", 1, p_lock) || !send_prepared(w, "bump", 2, p_bump) ||
	   !send_prepared(w, "ids", 1, p_ids) || PQpipelineSync(w->conn) != 1) {
		log_error(w, "cannot store messages", PQerrorMessage(w->conn));
		goto out;
	}
	PGresult *r_begin = pipe_result(w, PGRES_COMMAND_OK);
	PGresult *r_prog = pipe_result(w, PGRES_TUPLES_OK);
	PGresult *r_cid = cid.a[0] != NULL ? pipe_result(w, PGRES_TUPLES_OK) : NULL;
	PGresult *r_lock = pipe_result(w, PGRES_TUPLES_OK);
	PGresult *r_bump = pipe_result(w, PGRES_TUPLES_OK);
	PGresult *r_ids = pipe_result(w, PGRES_TUPLES_OK);
	bool all = r_begin && r_prog && (cid.a[0] == NULL || r_cid) && r_lock && r_bump && r_ids;
	if(all) {
		for(int r = 0; r < PQntuples(r_prog); r++) {
			int64_t e = strtoll(PQgetvalue(r_prog, r, 0), NULL, 10);
			int64_t upto = strtoll(PQgetvalue(r_prog, r, 1), NULL, 10);
			for(size_t i = 0; i < n; i++) {
				struct mqs_msg *m = ms[i];
				if(m->status == MSG_PENDING && be64(m->origin) == e && be64(m->origin + 8) <= upto) {
					m->status = MSG_DUPLICATE;
					dups++;
				}
			}
		}
		for(int r = 0; r_cid != NULL && r < PQntuples(r_cid); r++) {
			char key[CID_KEY_MAX];
			size_t kl = cid_key(key, PQgetvalue(r_cid, r, 0), PQgetvalue(r_cid, r, 1));
			struct mqs_msg *m = kl ? hmap_get(seen, key, kl) : NULL;
			if(m != NULL && m->status == MSG_PENDING) {
				m->status = MSG_DUPLICATE;
				dups++;
			}
		}
	}
	if(all && dups == 0) {
		char ts[32] = "";
		for(int r = 0; r < PQntuples(r_bump); r++) {
			struct batch_group *g = hmap_gets(groups, PQgetvalue(r_bump, r, 0));
			if(g == NULL) continue;
			g->exists = true;
			g->next = strtoll(PQgetvalue(r_bump, r, 1), NULL, 10) + 1;
			snprintf(ts, sizeof(ts), "%s", PQgetvalue(r_bump, r, 2));
		}
		int id = 0;
		for(size_t i = 0; i < n; i++) {
			struct mqs_msg *m = ms[i];
			if(m->status != MSG_PENDING) continue;
			struct batch_group *g = hmap_gets(groups, m->group);
			if(g == NULL || !g->exists) {
				m->status = MSG_NO_GROUP;
				continue;
			}
			m->status = MSG_STORED;
			m->seq = g->next++;
			m->id = strtoll(PQgetvalue(r_ids, id++, 0), NULL, 10); /* unused ids just leave gaps */
			memcpy(m->ts, ts, sizeof(m->ts));
			(*stored)++;
		}
	}
	PQclear(r_begin);
	PQclear(r_prog);
	PQclear(r_cid);
	PQclear(r_lock);
	PQclear(r_bump);
	PQclear(r_ids);
	piped = false;
	if(!pipe_finish(w) || !all) goto out;
	if(dups > 0) {
		/* Rare (a replay, a resend): undo the optimistic reservation; the duplicates stay marked
		 * and the caller reserves again for the rest. */
		rc = exec_ok(w, "ROLLBACK", "cannot roll back") ? -1 : 0;
		goto out;
	}
	rc = 1;
out:
	if(piped) pipe_finish(w);
	arrays_free(&ep);
	arrays_free(&cid);
	arrays_free(&grp);
	hmap_free(groups);
	hmap_free(seen);
	return rc;
}

/* upto and COMMIT in one round trip. */
static bool finish_pipelined(struct writer *w, struct mqs_msg **ms, size_t n)
{
	struct arrays x = {.ok = true};
	for(size_t i = 0; i < n; i++) {
		int64_t e = be64(ms[i]->origin);
		if(i + 1 < n && be64(ms[i + 1]->origin) == e) continue;
		add_int(&x, 0, e);
		add_int(&x, 1, be64(ms[i]->origin + 8));
	}
	const char *params[3] = {x.a[0], x.a[1], w->p->cfg.node};
	bool ok = x.ok && PQenterPipelineMode(w->conn) == 1;
	if(ok) {
		ok = send_prepared(w, "upto", 3, params) &&
		     PQsendQueryParams(w->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
		     PQpipelineSync(w->conn) == 1;
		PGresult *r1 = ok ? pipe_result(w, PGRES_COMMAND_OK) : NULL;
		PGresult *r2 = ok ? pipe_result(w, PGRES_COMMAND_OK) : NULL;
		ok = ok && r1 != NULL && r2 != NULL;
		PQclear(r1);
		PQclear(r2);
		ok = pipe_finish(w) && ok;
	}
	arrays_free(&x);
	return ok;
}

/* Stores ms[0..n) in one transaction and sets each status. False if nothing was committed (the
 * messages stay pending and are retried; a retry after an unknown commit outcome finds them
 * through spool_progress). */
static bool store_batch(struct writer *w, struct mqs_msg **ms, size_t n)
{
	size_t stored = 0;

	for(size_t i = 0; i < n; i++) ms[i]->status = MSG_PENDING;
	/* Each -1 marks at least one duplicate, so this ends within n + 1 rounds; usually one. */
	for(size_t round = 0; round <= n; round++) {
		int rc = reserve_pipelined(w, ms, n, &stored);
		if(rc == 2) return true; /* everything was a duplicate: nothing to write */
		if(rc == 0) break;
		if(rc == -1) continue;
		if(stored > 0 && !copy_rows(w, ms, n)) break;
		if(!finish_pipelined(w, ms, n)) break;
		return true;
	}
	for(size_t i = 0; i < n; i++) ms[i]->status = MSG_PENDING;
	recover(w);
	return false;
}

/* Stores pending messages batch by batch, oldest first; committed ones go back to the broker
 * thread. Stops at the first failure (the rest is retried later, in the same order). */
static void flush_msgs(struct writer *w)
{
	size_t batch = (size_t)w->p->cfg.batch_max;

	while(w->msg_head != NULL && w->conn != NULL) {
		size_t n = 0, bytes = 0;
		/* At most batch_max messages and about BATCH_BYTES of payload (at least one message). */
		for(struct mqs_item *it = w->msg_head; it != NULL && n < batch; it = it->next) {
			bytes += ((struct mqs_msg *)it)->payload_len;
			if(n > 0 && bytes > BATCH_BYTES) break;
			w->batch[n++] = (struct mqs_msg *)it;
		}
		if(!store_batch(w, w->batch, n)) break;
		/* Detach the first n items and hand them to the broker thread in one push. */
		struct mqs_item *head = w->msg_head, *last = &w->batch[n - 1]->hdr;
		w->msg_head = last->next;
		if(w->msg_head == NULL) w->msg_tail = NULL;
		last->next = NULL;
		w->nmsgs -= n;
		mqs_to_broker(w->p, head);
	}
}

/* ---- receipts and presence ------------------------------------------------------------------ */

static void receipt_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_receipt *r = value;
	(void)key;
	(void)keylen;
	add(x, 0, r->group);
	add(x, 1, r->user);
	add_int(x, 2, r->delivered);
	add_int(x, 3, r->read);
}

/* Applies all coalesced receipts in one statement. Cursors only move forward, read implies
 * delivered, and nothing moves past the group's last seq. */
static void flush_receipts(struct writer *w)
{
	struct arrays x = {.ok = true};
	hmap_each(w->receipts, receipt_to_arrays, &x);
	if(!x.ok) {
		arrays_free(&x);
		return;
	}
	const char *params[4] = {x.a[0], x.a[1], x.a[2], x.a[3]};
	PGresult *res = PQexecParams(
	        w->conn,
	        "WITH r(g, u, d, rd) AS (SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]))"
	        " UPDATE memberships m SET"
	        "  delivered_seq = greatest(m.delivered_seq, least(greatest(r.d, r.rd), gr.last_seq)),"
	        "  read_seq = greatest(m.read_seq, least(r.rd, gr.last_seq))"
	        " FROM r JOIN groups gr ON gr.id = r.g"
	        " WHERE m.group_id = r.g AND m.user_id = r.u"
	        " RETURNING m.group_id, m.user_id, m.delivered_seq, m.read_seq",
	        4, NULL, params, NULL, NULL, 0);
	arrays_free(&x);
	if(PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error(w, "cannot apply receipts", PQresultErrorMessage(res));
		PQclear(res);
		recover(w);
		return;
	}
	struct mqs_item *head = NULL, **tail = &head;
	for(int r = 0; r < PQntuples(res); r++) {
		char key[2 * MQS_ID_MAX + 2];
		const char *g = PQgetvalue(res, r, 0), *u = PQgetvalue(res, r, 1);
		size_t gl = strlen(g), ul = strlen(u);
		if(gl > MQS_ID_MAX || ul > MQS_ID_MAX) continue;
		memcpy(key, g, gl + 1);
		memcpy(key + gl + 1, u, ul);
		struct mqs_receipt *rc = hmap_take(w->receipts, key, gl + 1 + ul);
		if(rc == NULL) continue;
		rc->applied = true;
		rc->delivered = strtoll(PQgetvalue(res, r, 2), NULL, 10);
		rc->read = strtoll(PQgetvalue(res, r, 3), NULL, 10);
		*tail = &rc->hdr;
		tail = &rc->hdr.next;
	}
	PQclear(res);
	/* What is left matched no membership (removed meanwhile): nothing to broadcast. */
	hmap_free(w->receipts);
	w->receipts = hmap_new(item_free_cb);
	if(head != NULL) mqs_to_broker(w->p, head);
}

static void presence_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_presence *pr = value;
	(void)key;
	(void)keylen;
	add(x, 0, pr->user);
	add_int(x, 1, pr->connections);
}

static void flush_presence(struct writer *w)
{
	if(hmap_count(w->presence) > 0) {
		struct arrays x = {.ok = true};
		hmap_each(w->presence, presence_to_arrays, &x);
		if(!x.ok) {
			arrays_free(&x);
			return;
		}
		const char *params[3] = {w->p->cfg.node, x.a[0], x.a[1]};
		PGresult *res = PQexecParams(w->conn,
		                             "INSERT INTO presence (user_id, node, connections, last_seen)"
		                             " SELECT u, $1, c, now() FROM unnest($2::text[], $3::int4[]) AS t(u, c)"
		                             " ON CONFLICT (user_id, node) DO UPDATE"
		                             " SET connections = EXCLUDED.connections, last_seen = now()",
		                             3, NULL, params, NULL, NULL, 0);
		arrays_free(&x);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if(!ok) log_error(w, "cannot record presence", PQresultErrorMessage(res));
		PQclear(res);
		if(!ok) {
			recover(w);
			return;
		}
		hmap_free(w->presence);
		w->presence = hmap_new(item_free_cb);
	}
	if(w->heartbeat) {
		const char *params[1] = {w->p->cfg.node};
		PGresult *res = PQexecParams(
		        w->conn, "UPDATE presence SET last_seen = now() WHERE node = $1 AND connections > 0", 1, NULL,
		        params, NULL, NULL, 0);
		bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		PQclear(res);
		if(ok)
			w->heartbeat = false;
		else
			recover(w);
	}
}

/* ---- the thread ----------------------------------------------------------------------------- */

void *mqs_writer_main(void *arg)
{
	struct mqs_plugin *p = arg;
	struct writer w = {.p = p, .backoff_ms = 100};
	time_t stop_deadline = 0;

	w.receipts = hmap_new(item_free_cb);
	w.presence = hmap_new(item_free_cb);
	w.batch = calloc((size_t)p->cfg.batch_max, sizeof(*w.batch));
	if(w.receipts == NULL || w.presence == NULL || w.batch == NULL) {
		mqs_bglog(p, MOSQ_LOG_ERR, "writer: out of memory; messages stay in the spool");
		goto out;
	}
	for(;;) {
		bool stopping = atomic_load(&p->stopping);
		if(stopping && stop_deadline == 0) stop_deadline = time(NULL) + 3;
		int timeout = 1000;
		if(stopping) {
			timeout = 0;
		} else if(has_pending(&w)) {
			int64_t until = w.conn != NULL ? w.retry_at_ms : w.next_connect_ms;
			int64_t left = until - mono_ms();
			timeout = left > 0 ? (int)left : 0;
		}
		absorb(&w, mqs_queue_take(&p->to_writer, timeout, &p->stopping));
		if(stopping && (!has_pending(&w) || time(NULL) >= stop_deadline)) break;
		if(!has_pending(&w)) continue;
		if(w.conn != NULL && mono_ms() < w.retry_at_ms) {
			if(stopping) break; /* failed while stopping: what is left stays in the spool */
			continue;
		}
		if(!ensure_conn(&w)) {
			if(stopping) break;
			continue;
		}
		if(w.msg_head != NULL) flush_msgs(&w);
		if(w.conn != NULL && hmap_count(w.receipts) > 0) flush_receipts(&w);
		if(w.conn != NULL) flush_presence(&w);
	}
out:
	if(w.nmsgs > 0) {
		mqs_bglog(p, MOSQ_LOG_WARNING, "stopping with %zu messages not yet stored: they stay in the spool",
		          w.nmsgs);
	}
	while(w.msg_head != NULL) {
		struct mqs_item *next = w.msg_head->next;
		mqs_item_free(w.msg_head);
		w.msg_head = next;
	}
	free(w.batch);
	hmap_free(w.receipts);
	hmap_free(w.presence);
	free(w.buf);
	if(w.conn != NULL) PQfinish(w.conn);
	return NULL;
}
