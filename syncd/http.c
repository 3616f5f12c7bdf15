/* http: the libmicrohttpd server: request lifecycle, body limits, routing, authentication,
 * long-poll suspension, JSON responses and the store-code-to-status mapping. */
#include "http.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "groups.h"
#include "input.h"
#include "util.h"
#include "messages.h"
#include "ops.h"
#include "slog.h"
#include "store_users.h"
#include "token.h"
#include "users.h"

/* Per-connection memory for the request line and headers: room for a maximal sync token. */
#define SYNCD_CONN_MEMORY (160 * 1024)

enum route_auth {
	R_PUBLIC, /* no token */
	R_USER,   /* a user token; the admin token gets 403 */
	R_ANY,    /* a user token or the admin token; the handler decides */
	R_ADMIN,  /* the admin token only */
};
enum route_body { B_NONE, B_OPTIONAL, B_REQUIRED };
enum route_flags {
	RF_NO_DB = 1, /* runs at once, without a pooled connection (metrics answer while the database is down) */
};

struct route {
	const char *method;
	const char *pattern; /* segments; {gid}/{uid} are ids, {id} a positive integer */
	syncd_handler fn;
	enum route_auth auth;
	enum route_body body;
	unsigned flags; /* enum route_flags */
};

static const struct route routes[] = {
        {"GET", "/healthz", ops_healthz, R_PUBLIC, B_NONE, 0},
        {"GET", "/metrics", ops_metrics, R_PUBLIC, B_NONE, RF_NO_DB},
        {"GET", "/messages/sync", messages_sync, R_USER, B_NONE, 0},
        {"POST", "/messages/ack", messages_ack, R_USER, B_REQUIRED, 0},
        {"GET", "/messages/{id}/status", messages_status, R_USER, B_NONE, 0},
        {"PUT", "/groups/{gid}/read", messages_read, R_USER, B_REQUIRED, 0},
        {"GET", "/groups/{gid}/messages", messages_history, R_USER, B_NONE, 0},
        {"POST", "/groups", groups_create, R_ANY, B_REQUIRED, 0},
        {"GET", "/groups", groups_list, R_USER, B_NONE, 0},
        {"GET", "/groups/{gid}", groups_get, R_ANY, B_NONE, 0},
        {"GET", "/groups/{gid}/members", groups_members, R_ANY, B_NONE, 0},
        {"PUT", "/groups/{gid}/members/{uid}", groups_member_put, R_ANY, B_OPTIONAL, 0},
        {"DELETE", "/groups/{gid}/members/{uid}", groups_member_delete, R_ANY, B_NONE, 0},
        {"GET", "/presence", groups_presence, R_USER, B_NONE, 0},
        {"POST", "/users", users_post, R_ADMIN, B_REQUIRED, 0},
        {"POST", "/users/{uid}/token", users_rotate, R_ANY, B_NONE, 0},
        {"DELETE", "/users/{uid}", users_delete, R_ADMIN, B_NONE, 0},
};
#define ROUTE_COUNT (sizeof(routes) / sizeof(routes[0]))

struct syncd {
	struct MHD_Daemon *daemon;
	struct syncd_pool *pool;
	struct syncd_metrics *metrics;
	struct waiters *waiters;
	bool has_admin;
	unsigned char admin_hash[MQS_TOKEN_HASH_LEN];
	long receipts_max_members;
	char labels[ROUTE_COUNT][64]; /* "GET /groups/{gid}": route labels for /metrics */
	const char *label_ptrs[ROUTE_COUNT];
	pthread_mutex_t lock;
	int in_flight; /* requests begun and not yet completed (shutdown lets them finish) */
};

/* Per-request state, allocated on the first call and freed in request_completed. */
struct request {
	char *body;
	size_t len;
	size_t cap;
	bool too_large;
	bool suspended; /* held by the waiters registry right now */
	bool ready;     /* routing, authentication and body parsing are done */
	bool reauth;    /* resumed after being held: check the token again (it may have been revoked) */
	struct timespec started;
	size_t route; /* ROUTE_COUNT when unmatched */
	char *pathbuf;
	const char *params[2];
	json_t *json;
	enum syncd_auth auth;
	char user[MQS_ID_MAX + 1];
	struct syncd_longpoll lp;
	char ctx[160]; /* "GET /groups/fam/messages" (truncated): the prefix of this request's log lines */
};

unsigned syncd_error(struct syncd_reply *reply, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if(reply->json) json_decref(reply->json);
	reply->status = status;
	reply->json = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	return status;
}

unsigned syncd_bad_request(struct syncd_reply *reply, const char *msg)
{
	return syncd_error(reply, 400, "bad_request", "%s", msg);
}

unsigned syncd_db_error(struct syncd_reply *reply)
{
	return syncd_error(reply, 503, "unavailable", "database unavailable");
}

unsigned syncd_oom(struct syncd_reply *reply)
{
	return syncd_error(reply, 503, "unavailable", "out of memory");
}

unsigned syncd_no_content(struct syncd_reply *reply)
{
	reply->status = 204;
	return 204;
}

unsigned syncd_store_error(struct syncd_reply *reply, enum store_rc rc, const char *fmt, ...)
{
	static const struct {
		unsigned status;
		const char *code;
	} map[] = {
	        [STORE_NOT_FOUND] = {404, "not_found"},
	        [STORE_NOT_MEMBER] = {403, "forbidden"},
	        [STORE_CONFLICT] = {409, "conflict"},
	        [STORE_INVALID] = {400, "bad_request"},
	};
	char msg[512];
	va_list ap;

	if(rc == STORE_DB_ERROR) return syncd_db_error(reply);
	if(rc == STORE_NO_MEMORY) return syncd_oom(reply);
	if(rc == STORE_OK || (size_t)rc >= sizeof(map) / sizeof(map[0]) || map[rc].code == NULL)
		return syncd_error(reply, 500, "internal", "unexpected store result %d", (int)rc);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return syncd_error(reply, map[rc].status, map[rc].code, "%s", msg);
}

unsigned syncd_reply_json(struct syncd_reply *reply, unsigned status, json_t *json)
{
	if(json == NULL) return syncd_oom(reply);
	if(reply->json) json_decref(reply->json);
	reply->status = status;
	reply->json = json;
	return status;
}

const char *syncd_query(struct syncd_call *call, const char *name)
{
	return MHD_lookup_connection_value(call->conn, MHD_GET_ARGUMENT_KIND, name);
}

struct query_check {
	const char *const *allowed;
	const char *bad;
};

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query_check *qc = cls;
	(void)kind;
	(void)value;
	for(const char *const *a = qc->allowed; *a; a++) {
		if(!strcmp(*a, key)) return MHD_YES;
	}
	qc->bad = key;
	return MHD_NO;
}

bool syncd_query_only(struct syncd_call *call, const char *const *allowed, struct syncd_reply *reply)
{
	struct query_check qc = {allowed, NULL};
	MHD_get_connection_values(call->conn, MHD_GET_ARGUMENT_KIND, check_arg, &qc);
	if(qc.bad == NULL) return true;
	if(mqs_id_valid(qc.bad))
		syncd_error(reply, 400, "bad_request", "unknown query parameter '%s'", qc.bad);
	else
		syncd_error(reply, 400, "bad_request", "unknown query parameter");
	return false;
}

void syncd_count_messages(struct syncd_call *call, size_t n)
{
	metrics_messages(call->sd->metrics, n);
}

struct syncd_metrics *syncd_metrics_of(struct syncd *sd)
{
	return sd->metrics;
}

void syncd_gauges_sample(struct syncd *sd, struct syncd_gauges *g)
{
	syncd_pool_stats(sd->pool, &g->pool_size, &g->pool_in_use);
	g->longpoll_waiting = waiters_count(sd->waiters);
	g->listener_connected = waiters_connected(sd->waiters);
}

#define MAX_SEGS 8

/* Splits buf (a copy of the path without its leading '/') into segments in place. Returns the
 * count, or -1 when there are too many. */
static int split_path(char *buf, char **segs)
{
	int n = 0;
	char *s = buf;

	for(;;) {
		if(n == MAX_SEGS) return -1;
		segs[n++] = s;
		char *e = strchr(s, '/');
		if(e == NULL) return n;
		*e = '\0';
		s = e + 1;
	}
}

/* True when the segments match pattern; path parameters go to params (borrowed from segs). */
static bool route_match(const char *pattern, char **segs, int n, const char **params)
{
	const char *p = pattern + 1;
	int np = 0;

	for(int i = 0; i < n; i++) {
		const char *end = strchr(p, '/');
		size_t plen = end ? (size_t)(end - p) : strlen(p);
		if(plen == 0) return false;
		if(p[0] == '{') {
			if(segs[i][0] == '\0' || np == 2) return false;
			params[np++] = segs[i];
		} else if(strlen(segs[i]) != plen || strncmp(p, segs[i], plen) != 0) {
			return false;
		}
		if(end == NULL) return i == n - 1;
		p = end + 1;
	}
	return false;
}

/* Validates the path parameters of a matched route. Returns 0 or the error status set in reply. */
static unsigned check_params(const char *pattern, const char **params, struct syncd_reply *reply)
{
	int np = 0;

	for(const char *p = strchr(pattern, '{'); p; p = strchr(p + 1, '{')) {
		const char *v = params[np++];
		if(!strncmp(p, "{id}", 4)) {
			int64_t id;
			if(!mqs_parse_int(v, 1, INT64_MAX, &id))
				return syncd_bad_request(reply, "id: expected a positive integer");
		} else if(!mqs_id_valid(v)) {
			return syncd_error(reply, 400, "bad_request", "%s: must match [A-Za-z0-9_-]{1,64}",
			                   !strncmp(p, "{gid}", 5) ? "gid" : "uid");
		}
	}
	return 0;
}

/* Finds the route for method+path. Returns ROUTE_COUNT when none; *path_exists tells 405 from
 * 404, *oom a failed copy of the path (503). On a match, req->pathbuf holds the split path and
 * req->params point into it. */
static size_t route_find(struct request *req, const char *method, const char *path, bool *path_exists, bool *oom)
{
	char *segs[MAX_SEGS];
	const char *params[2];
	size_t found = ROUTE_COUNT;

	*path_exists = false;
	*oom = false;
	if(path[0] != '/') return ROUTE_COUNT;
	req->pathbuf = strdup(path + 1);
	if(req->pathbuf == NULL) {
		*oom = true;
		return ROUTE_COUNT;
	}
	int n = split_path(req->pathbuf, segs);
	if(n < 0) return ROUTE_COUNT;
	for(size_t i = 0; i < ROUTE_COUNT; i++) {
		if(!route_match(routes[i].pattern, segs, n, params)) continue;
		*path_exists = true;
		if(strcmp(routes[i].method, method) != 0) continue;
		found = i;
		memcpy(req->params, params, sizeof(params));
		break;
	}
	return found;
}

static double elapsed(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static enum MHD_Result send_reply(struct syncd *sd, struct request *req, struct MHD_Connection *conn,
                                  struct syncd_reply *reply)
{
	char *text = NULL;
	const char *ctype = reply->content_type;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	if(reply->json != NULL) {
		text = json_dumps(reply->json, JSON_COMPACT);
		json_decref(reply->json);
		reply->json = NULL;
		ctype = "application/json";
	} else {
		text = reply->text;
		reply->text = NULL;
	}
	if(text == NULL && reply->status != 204) {
		/* Out of memory: a static reply (MHD_create_response_from_buffer below would then fail too
		 * if it could not even copy this, and the connection is closed). */
		reply->status = 503;
		text = strdup("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
		ctype = "application/json";
	}
	if(reply->status == 204) {
		free(text);
		text = NULL;
	}
	resp = MHD_create_response_from_buffer(text ? strlen(text) : 0, text, MHD_RESPMEM_MUST_FREE);
	if(resp == NULL) {
		free(text);
		return MHD_NO;
	}
	if(text != NULL) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "text/plain");
	if(reply->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, reply->status, resp);
	MHD_destroy_response(resp);
	metrics_observe(sd->metrics, req->route, reply->status, elapsed(&req->started));
	return ret;
}

/* Authenticates the bearer token of conn on db. Returns 0 with req->auth/user set, or an error
 * status set in reply (401 for a missing/unknown token, 503 for a database failure). */
static unsigned authenticate(struct syncd *sd, struct request *req, struct MHD_Connection *conn, struct db_conn *db,
                             struct syncd_reply *reply)
{
	size_t len = 0;
	const char *hdr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	const char *tok = input_bearer(hdr, &len);
	unsigned char hash[MQS_TOKEN_HASH_LEN];

	if(tok == NULL) return syncd_error(reply, 401, "unauthorized", "a bearer token is required");
	if(!mqs_token_hash(tok, len, hash)) return syncd_error(reply, 503, "unavailable", "hashing failed");
	if(sd->has_admin && mqs_token_hash_eq(hash, sd->admin_hash)) {
		req->auth = SYNCD_AUTH_ADMIN;
		return 0;
	}
	enum store_rc rc = store_user_by_token(db, hash, req->user);
	if(rc == STORE_NOT_FOUND) return syncd_error(reply, 401, "unauthorized", "unknown or revoked token");
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "authentication failed");
	req->auth = SYNCD_AUTH_USER;
	return 0;
}

/* Checks the route's auth class and parses the body. Returns 0 or an error status. */
static unsigned prepare(struct syncd *sd, struct request *req, struct MHD_Connection *conn, struct db_conn *db,
                        struct syncd_reply *reply)
{
	const struct route *r = &routes[req->route];
	char err[256];
	unsigned rc;

	if(r->auth != R_PUBLIC) {
		rc = authenticate(sd, req, conn, db, reply);
		if(rc) return rc;
		if(r->auth == R_USER && req->auth != SYNCD_AUTH_USER)
			return syncd_error(reply, 403, "forbidden",
			                   "this endpoint needs a user's token, not the admin token");
		if(r->auth == R_ADMIN && req->auth != SYNCD_AUTH_ADMIN)
			return syncd_error(reply, 403, "forbidden", "this endpoint needs the admin token");
	}
	rc = check_params(r->pattern, req->params, reply);
	if(rc) return rc;
	if(req->len == 0) {
		if(r->body == B_REQUIRED) return syncd_bad_request(reply, "a JSON request body is required");
		return 0;
	}
	if(r->body == B_NONE) return syncd_bad_request(reply, "this endpoint takes no request body");
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if(!input_is_json_type(ct))
		return syncd_error(reply, 415, "unsupported_media_type", "the request body must be application/json");
	req->json = input_json_object(req->body, req->len, err, sizeof(err));
	if(req->json == NULL) return syncd_bad_request(reply, err);
	return 0;
}

/* Runs the handler (again, after a resume) until it answers or its connection is suspended. */
static enum MHD_Result dispatch(struct syncd *sd, struct request *req, struct MHD_Connection *conn, const char *method,
                                const char *url)
{
	struct syncd_reply reply = {0};

	for(;;) {
		PGconn *pg = syncd_pool_get(sd->pool, 5000);
		if(pg == NULL) {
			syncd_db_error(&reply);
			return send_reply(sd, req, conn, &reply);
		}
		struct db_conn dbc = {pg, req->ctx}, *db = &dbc;
		if(!req->ready) {
			unsigned rc = prepare(sd, req, conn, db, &reply);
			if(rc) {
				syncd_pool_put(sd->pool, pg, false);
				return send_reply(sd, req, conn, &reply);
			}
			req->ready = true;
		} else if(req->reauth) {
			/* A long-poll may be held for a minute: a token rotated or deleted meanwhile must not
			 * be answered with messages (SPEC 5.5, within 1 s). The same user, or 401. */
			char user[sizeof(req->user)];
			snprintf(user, sizeof(user), "%s", req->user);
			unsigned rc = authenticate(sd, req, conn, db, &reply);
			if(rc == 0 && strcmp(user, req->user) != 0)
				rc = syncd_error(&reply, 401, "unauthorized", "unknown or revoked token");
			if(rc) {
				syncd_pool_put(sd->pool, pg, false);
				return send_reply(sd, req, conn, &reply);
			}
		}
		req->reauth = false;
		struct syncd_call call = {
		        .sd = sd,
		        .db = db,
		        .method = method,
		        .path = url,
		        .params = {req->params[0], req->params[1]},
		        .body = req->json,
		        .conn = conn,
		        .auth = req->auth,
		        .user = req->auth == SYNCD_AUTH_USER ? req->user : NULL,
		        .lp = &req->lp,
		        .receipts_max_members = sd->receipts_max_members,
		};
		unsigned status = routes[req->route].fn(&call, &reply);
		/* A handler leaves no transaction open; the pool closes a connection that it did. */
		syncd_pool_put(sd->pool, pg, false);
		if(status != SYNCD_SUSPEND) return send_reply(sd, req, conn, &reply);

		switch(waiters_suspend(sd->waiters, &req->lp.w, conn)) {
		case WAITERS_SUSPENDED:
			req->suspended = true;
			return MHD_YES;
		case WAITERS_STOPPING:
			req->lp.expired = true;
			break;
		case WAITERS_RETRY:
			break;
		}
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
	struct syncd *sd = cls;
	struct request *req = *con_cls;
	struct syncd_reply reply = {0};

	(void)version;
	if(req == NULL) {
		req = calloc(1, sizeof(*req));
		if(req == NULL) return MHD_NO;
		clock_gettime(CLOCK_MONOTONIC, &req->started);
		req->route = ROUTE_COUNT;
		*con_cls = req;
		pthread_mutex_lock(&sd->lock);
		sd->in_flight++;
		pthread_mutex_unlock(&sd->lock);
		return MHD_YES;
	}
	if(*upload_data_size > 0) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if(req->too_large || req->len + n > SYNCD_BODY_MAX) {
			req->too_large = true; /* keep draining, answer 413 at the end */
			return MHD_YES;
		}
		if(req->len + n + 1 > req->cap) {
			size_t cap = req->cap ? req->cap : 4096;
			while(cap < req->len + n + 1) cap *= 2;
			char *nb = realloc(req->body, cap);
			if(nb == NULL) return MHD_NO;
			req->body = nb;
			req->cap = cap;
		}
		memcpy(req->body + req->len, upload_data, n);
		req->len += n;
		req->body[req->len] = '\0';
		return MHD_YES;
	}
	if(req->suspended) {
		/* Resumed by the waiters registry: a notification, the deadline, or shutdown. */
		struct timespec now;
		req->suspended = false;
		req->reauth = req->auth == SYNCD_AUTH_USER;
		clock_gettime(CLOCK_MONOTONIC, &now);
		const struct timespec *d = &req->lp.w.deadline;
		if(now.tv_sec > d->tv_sec || (now.tv_sec == d->tv_sec && now.tv_nsec >= d->tv_nsec))
			req->lp.expired = true;
		return dispatch(sd, req, conn, method, url);
	}
	if(req->too_large) {
		syncd_error(&reply, 413, "too_large", "request body exceeds %d bytes", SYNCD_BODY_MAX);
		return send_reply(sd, req, conn, &reply);
	}
	bool exists, oom;
	snprintf(req->ctx, sizeof(req->ctx), "%s %s", method, url);
	req->route = route_find(req, method, url, &exists, &oom);
	if(req->route == ROUTE_COUNT) {
		if(oom)
			syncd_oom(&reply);
		else if(exists)
			syncd_error(&reply, 405, "method_not_allowed", "this method is not allowed on this path");
		else
			syncd_error(&reply, 404, "not_found", "no such endpoint");
		return send_reply(sd, req, conn, &reply);
	}
	if(routes[req->route].flags & RF_NO_DB) {
		struct syncd_call call = {.sd = sd, .method = method, .path = url, .conn = conn, .lp = &req->lp};
		routes[req->route].fn(&call, &reply);
		return send_reply(sd, req, conn, &reply);
	}
	return dispatch(sd, req, conn, method, url);
}

static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
	(void)cls;
	(void)conn;
	return input_unescape(s);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
	struct syncd *sd = cls;
	struct request *req = *con_cls;

	(void)conn;
	(void)toe;
	if(req == NULL) return;
	pthread_mutex_lock(&sd->lock);
	sd->in_flight--;
	pthread_mutex_unlock(&sd->lock);
	free(req->body);
	free(req->pathbuf);
	json_decref(req->json);
	waiter_free(&req->lp.w);
	free(req);
	*con_cls = NULL;
}

struct syncd *syncd_start(const struct syncd_config *cfg)
{
	char host[256];
	unsigned short port;
	struct sockaddr_in addr = {0};
	struct syncd *sd;

	if(!syncd_config_listen(cfg, host, sizeof(host), &port)) return NULL;
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if(!strcmp(host, "localhost")) snprintf(host, sizeof(host), "127.0.0.1");
	if(inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		syncd_log(MQS_LOG_ERR, NULL, "--listen: '%s' is not an IPv4 address", host);
		return NULL;
	}
	sd = calloc(1, sizeof(*sd));
	if(sd == NULL) return NULL;
	pthread_mutex_init(&sd->lock, NULL);
	sd->receipts_max_members = cfg->receipts_max_members;
	if(cfg->admin_token != NULL) {
		if(!mqs_token_hash(cfg->admin_token, strlen(cfg->admin_token), sd->admin_hash)) goto fail;
		sd->has_admin = true;
	}
	for(size_t i = 0; i < ROUTE_COUNT; i++) {
		snprintf(sd->labels[i], sizeof(sd->labels[i]), "%s %s", routes[i].method, routes[i].pattern);
		sd->label_ptrs[i] = sd->labels[i];
	}
	sd->metrics = metrics_new(sd->label_ptrs, ROUTE_COUNT);
	sd->pool = syncd_pool_new(cfg->db, (int)cfg->threads, db_prepare_all);
	sd->waiters = waiters_start(cfg->db);
	if(sd->metrics == NULL || sd->pool == NULL || sd->waiters == NULL) goto fail;
	sd->daemon = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME, port,
	        NULL, NULL, on_request, sd, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned int)cfg->threads, MHD_OPTION_NOTIFY_COMPLETED, request_completed, sd,
	        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SYNCD_CONN_MEMORY, MHD_OPTION_END);
	if(sd->daemon == NULL) {
		syncd_log(MQS_LOG_ERR, NULL, "cannot listen on %s", cfg->listen);
		goto fail;
	}
	syncd_log(MQS_LOG_INFO, NULL, "listening on %s with %ld threads", cfg->listen, cfg->threads);
	return sd;

fail:
	waiters_free(sd->waiters);
	syncd_pool_free(sd->pool);
	metrics_free(sd->metrics);
	pthread_mutex_destroy(&sd->lock);
	free(sd);
	return NULL;
}

void syncd_stop(struct syncd *sd)
{
	if(sd == NULL) return;
	/* Stop accepting; answer held long-polls (they must not be suspended at MHD_stop_daemon) and
	 * let every begun request finish sending its response, for up to 3 s. */
	MHD_socket lsock = MHD_quiesce_daemon(sd->daemon);
	if(lsock != MHD_INVALID_SOCKET) close(lsock);
	waiters_stop(sd->waiters);
	for(int i = 0; i < 300; i++) {
		pthread_mutex_lock(&sd->lock);
		int busy = sd->in_flight;
		pthread_mutex_unlock(&sd->lock);
		if(busy == 0) break;
		usleep(10000);
	}
	MHD_stop_daemon(sd->daemon);
	waiters_free(sd->waiters);
	syncd_pool_free(sd->pool);
	metrics_free(sd->metrics);
	pthread_mutex_destroy(&sd->lock);
	free(sd);
}
