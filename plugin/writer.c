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

#define TS_SQL "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

struct writer {
	struct mqs_plugin *p;
	PGconn *conn;
	bool presence_reset; /* this node's stale rows from an earlier run were cleared */
	bool was_down;
	long backoff_ms;
	int64_t next_connect_ms; /* monotonic; no connection attempt before it */
	int64_t retry_at_ms;     /* monotonic; after a failed statement, no retry before it */
	time_t last_error_log;
	/* pending work, oldest first */
	struct mqs_msg **msgs;
	size_t nmsgs, capmsgs;
	struct hmap *receipts; /* "gid\0uid" -> struct mqs_receipt *, coalesced */
	struct hmap *presence; /* uid -> struct mqs_presence *, latest count */
	bool heartbeat;
	/* COPY buffer, reused */
	uint8_t *buf;
	size_t buflen, bufcap;
};

static void item_free_cb(void *v)
{
	mqs_item_free(v);
}

static bool has_pending(const struct writer *w)
{
	return w->nmsgs > 0 || hmap_count(w->receipts) > 0 || hmap_count(w->presence) > 0 || w->heartbeat;
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
			if(w->nmsgs == w->capmsgs) {
				size_t cap = w->capmsgs ? w->capmsgs * 2 : 1024;
				struct mqs_msg **m = realloc(w->msgs, cap * sizeof(*m));
				if(m == NULL) {
					/* Out of memory: the message stays in the spool; the next start replays it. */
					mqs_item_free(it);
					it = next;
					continue;
				}
				w->msgs = m;
				w->capmsgs = cap;
			}
			w->msgs[w->nmsgs++] = (struct mqs_msg *)it;
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
	if(PQstatus(w->conn) != CONNECTION_OK) {
		PQfinish(w->conn);
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
	const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
	const char *vals[] = {w->p->cfg.conninfo, "5", app, NULL};
	w->conn = PQconnectdbParams(keys, vals, 1);
	if(PQstatus(w->conn) != CONNECTION_OK) {
		log_error(w, "database unreachable", PQerrorMessage(w->conn));
		PQfinish(w->conn);
		w->conn = NULL;
		w->was_down = true;
		return false;
	}
	if(!exec_ok(w,
	            "CREATE TEMP TABLE mqs_stage (idx int4 NOT NULL, origin bytea NOT NULL, group_id text NOT NULL,"
	            " sender text NOT NULL, cid text, qos int2 NOT NULL, payload bytea NOT NULL,"
	            " dup bool NOT NULL DEFAULT false, gone bool NOT NULL DEFAULT false) ON COMMIT DELETE ROWS",
	            "cannot prepare the staging table")) {
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

static void put_field(struct writer *w, const void *data, size_t len)
{
	put32(w, (int32_t)len);
	memcpy(w->buf + w->buflen, data, len);
	w->buflen += len;
}

/* Encodes ms[0..n) as a binary COPY stream for mqs_stage. */
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
		size_t gl = strlen(m->group), sl = strlen(m->sender), cl = strlen(m->cid);
		if(!buf_reserve(w, 2 + 7 * 4 + 4 + MQS_ORIGIN_LEN + gl + sl + cl + 2 + m->payload_len)) return false;
		put16(w, 7);
		put32(w, 4);
		put32(w, (int32_t)i);
		put_field(w, m->origin, MQS_ORIGIN_LEN);
		put_field(w, m->group, gl);
		put_field(w, m->sender, sl);
		if(cl > 0)
			put_field(w, m->cid, cl);
		else
			put32(w, -1);
		put32(w, 2);
		put16(w, m->qos);
		put_field(w, m->payload, m->payload_len);
	}
	if(!buf_reserve(w, 2)) return false;
	put16(w, -1);
	return true;
}

static int cmp_origin(const void *a, const void *b)
{
	const struct mqs_msg *x = *(struct mqs_msg *const *)a, *y = *(struct mqs_msg *const *)b;
	return memcmp(x->origin, y->origin, MQS_ORIGIN_LEN);
}

static int64_t get_int8(const char *v)
{
	uint32_t hi, lo;
	memcpy(&hi, v, 4);
	memcpy(&lo, v + 4, 4);
	return (int64_t)(((uint64_t)ntohl(hi) << 32) | ntohl(lo));
}

/* Statement order matters: the staged rows are deduplicated, then the groups' rows are locked in id
 * order (so concurrent writers cannot deadlock), then seqs are assigned and the rows inserted. */
static const char sql_dedupe_lock[] =
        "UPDATE mqs_stage s SET dup = true WHERE"
        " EXISTS (SELECT 1 FROM messages m WHERE m.origin = s.origin)"
        " OR (s.cid IS NOT NULL AND EXISTS (SELECT 1 FROM messages m WHERE m.sender = s.sender AND m.cid = s.cid))"
        " OR (s.cid IS NOT NULL AND EXISTS (SELECT 1 FROM mqs_stage t"
        "     WHERE t.sender = s.sender AND t.cid = s.cid AND t.idx < s.idx));"
        "UPDATE mqs_stage s SET gone = true WHERE NOT dup"
        " AND NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = s.group_id);"
        "SELECT g.id FROM groups g WHERE g.id IN (SELECT group_id FROM mqs_stage WHERE NOT dup AND NOT gone)"
        " ORDER BY g.id FOR UPDATE";

static const char sql_insert[] =
        "WITH c AS (SELECT group_id, count(*) AS n FROM mqs_stage WHERE NOT dup AND NOT gone GROUP BY group_id),"
        " u AS (UPDATE groups g SET last_seq = g.last_seq + c.n FROM c WHERE g.id = c.group_id"
        "       RETURNING g.id, g.last_seq - c.n AS base)"
        " INSERT INTO messages (group_id, seq, sender, payload, qos, cid, origin)"
        " SELECT s.group_id, u.base + row_number() OVER (PARTITION BY s.group_id ORDER BY s.idx),"
        "        s.sender, s.payload, s.qos, s.cid, s.origin"
        " FROM mqs_stage s JOIN u ON u.id = s.group_id WHERE NOT s.dup AND NOT s.gone"
        " RETURNING origin, id, seq, " TS_SQL;

/* Stores ms[0..n) in one transaction and sets each status. False if nothing was committed (the
 * messages stay pending). */
static bool store_batch(struct writer *w, struct mqs_msg **ms, size_t n)
{
	PGresult *res = NULL;

	if(!encode_copy(w, ms, n)) return false;
	if(!exec_ok(w, "BEGIN", "cannot begin")) goto fail;
	res = PQexec(w->conn,
	             "COPY mqs_stage (idx, origin, group_id, sender, cid, qos, payload) FROM STDIN (FORMAT binary)");
	if(PQresultStatus(res) != PGRES_COPY_IN) {
		log_error(w, "cannot store messages", PQresultErrorMessage(res));
		goto fail;
	}
	PQclear(res);
	res = NULL;
	if(PQputCopyData(w->conn, (const char *)w->buf, (int)w->buflen) != 1 || PQputCopyEnd(w->conn, NULL) != 1) {
		log_error(w, "cannot store messages", PQerrorMessage(w->conn));
		goto fail;
	}
	res = PQgetResult(w->conn);
	bool copied = PQresultStatus(res) == PGRES_COMMAND_OK;
	if(!copied) log_error(w, "cannot store messages", PQresultErrorMessage(res));
	PQclear(res);
	res = NULL;
	while((res = PQgetResult(w->conn)) != NULL) PQclear(res);
	if(!copied) goto fail;
	if(!exec_ok(w, sql_dedupe_lock, "cannot store messages")) goto fail;

	res = PQexecParams(w->conn, sql_insert, 0, NULL, NULL, NULL, NULL, 1);
	if(PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error(w, "cannot store messages", PQresultErrorMessage(res));
		goto fail;
	}
	/* Map returned rows back to messages by origin. */
	struct mqs_msg **sorted = malloc(n * sizeof(*sorted));
	if(sorted == NULL) goto fail;
	memcpy(sorted, ms, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_origin);
	for(size_t i = 0; i < n; i++) ms[i]->status = MSG_DUPLICATE; /* unless returned below */
	int rows = PQntuples(res);
	for(int r = 0; r < rows; r++) {
		struct mqs_msg key, *kp = &key;
		memcpy(key.origin, PQgetvalue(res, r, 0), MQS_ORIGIN_LEN);
		struct mqs_msg **hit = bsearch(&kp, sorted, n, sizeof(*sorted), cmp_origin);
		if(hit == NULL) continue;
		(*hit)->status = MSG_STORED;
		(*hit)->id = get_int8(PQgetvalue(res, r, 1));
		(*hit)->seq = get_int8(PQgetvalue(res, r, 2));
		snprintf((*hit)->ts, sizeof((*hit)->ts), "%.*s", PQgetlength(res, r, 3), PQgetvalue(res, r, 3));
	}
	free(sorted);
	PQclear(res);
	res = NULL;
	if((size_t)rows < n) {
		res = PQexec(w->conn, "SELECT idx FROM mqs_stage WHERE gone");
		if(PQresultStatus(res) != PGRES_TUPLES_OK) goto fail;
		for(int r = 0; r < PQntuples(res); r++) {
			long idx = strtol(PQgetvalue(res, r, 0), NULL, 10);
			if(idx >= 0 && (size_t)idx < n) ms[idx]->status = MSG_NO_GROUP;
		}
		PQclear(res);
		res = NULL;
	}
	if(!exec_ok(w, "COMMIT", "cannot commit messages")) goto fail;
	return true;

fail:
	PQclear(res);
	for(size_t i = 0; i < n; i++) ms[i]->status = MSG_PENDING;
	recover(w);
	return false;
}

/* Stores pending messages batch by batch; committed ones go back to the broker thread. */
static void flush_msgs(struct writer *w)
{
	size_t done = 0, batch = (size_t)w->p->cfg.batch_max;

	while(done < w->nmsgs && w->conn != NULL) {
		size_t n = w->nmsgs - done < batch ? w->nmsgs - done : batch;
		if(!store_batch(w, w->msgs + done, n)) break;
		struct mqs_item *head = NULL, **tail = &head;
		for(size_t i = 0; i < n; i++) {
			*tail = &w->msgs[done + i]->hdr;
			tail = &(*tail)->next;
		}
		*tail = NULL;
		mqs_queue_push(&w->p->to_broker, head);
		mqs_wake_poke(&w->p->wake);
		done += n;
	}
	memmove(w->msgs, w->msgs + done, (w->nmsgs - done) * sizeof(*w->msgs));
	w->nmsgs -= done;
}

/* ---- receipts and presence ------------------------------------------------------------------ */

/* Appends s to a PostgreSQL array literal under construction (ids and numbers need no quoting). */
static bool arr_add(char **arr, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);
	if(*len + n + 3 > *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		while(c < *len + n + 3) c *= 2;
		char *a = realloc(*arr, c);
		if(a == NULL) return false;
		*arr = a;
		*cap = c;
	}
	(*arr)[*len] = *len == 0 ? '{' : ',';
	(*len)++;
	memcpy(*arr + *len, s, n);
	*len += n;
	(*arr)[*len] = '}';
	(*arr)[*len + 1] = '\0';
	return true;
}

struct arrays {
	char *a[4];
	size_t len[4], cap[4];
	bool ok;
};

static void receipt_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_receipt *r = value;
	char d[24], rd[24];
	(void)key;
	(void)keylen;
	snprintf(d, sizeof(d), "%lld", (long long)r->delivered);
	snprintf(rd, sizeof(rd), "%lld", (long long)r->read);
	x->ok = x->ok && arr_add(&x->a[0], &x->len[0], &x->cap[0], r->group) &&
	        arr_add(&x->a[1], &x->len[1], &x->cap[1], r->user) && arr_add(&x->a[2], &x->len[2], &x->cap[2], d) &&
	        arr_add(&x->a[3], &x->len[3], &x->cap[3], rd);
}

static void arrays_free(struct arrays *x)
{
	for(int i = 0; i < 4; i++) free(x->a[i]);
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
	if(head != NULL) {
		mqs_queue_push(&w->p->to_broker, head);
		mqs_wake_poke(&w->p->wake);
	}
}

static void presence_to_arrays(const void *key, size_t keylen, void *value, void *arg)
{
	struct arrays *x = arg;
	struct mqs_presence *pr = value;
	char c[16];
	(void)key;
	(void)keylen;
	snprintf(c, sizeof(c), "%d", pr->connections);
	x->ok = x->ok && arr_add(&x->a[0], &x->len[0], &x->cap[0], pr->user) &&
	        arr_add(&x->a[1], &x->len[1], &x->cap[1], c);
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
	if(w.receipts == NULL || w.presence == NULL) goto out;
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
		if(!stopping && w.conn != NULL && mono_ms() < w.retry_at_ms) continue;
		if(!ensure_conn(&w)) {
			if(stopping) break;
			continue;
		}
		if(w.nmsgs > 0) flush_msgs(&w);
		if(w.conn != NULL && hmap_count(w.receipts) > 0) flush_receipts(&w);
		if(w.conn != NULL) flush_presence(&w);
	}
out:
	if(w.nmsgs > 0) {
		mqs_bglog(p, MOSQ_LOG_WARNING, "stopping with %zu messages not yet stored: they stay in the spool",
		          w.nmsgs);
	}
	for(size_t i = 0; i < w.nmsgs; i++) mqs_item_free(&w.msgs[i]->hdr);
	free(w.msgs);
	hmap_free(w.receipts);
	hmap_free(w.presence);
	free(w.buf);
	if(w.conn != NULL) PQfinish(w.conn);
	return NULL;
}
