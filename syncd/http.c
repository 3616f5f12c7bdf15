/* http: the libmicrohttpd server: request lifecycle, body limits, routing, JSON responses. */
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

#include "log.h"

struct syncd {
	struct MHD_Daemon *daemon;
	struct syncd_pool *pool;
	pthread_mutex_t metrics_lock;
	unsigned long requests_by_status[6]; /* index status/100 */
};

/* Per-request state, allocated on the first call and freed in request_completed. */
struct request {
	char *body;
	size_t len;
	size_t cap;
	bool too_large;
	struct timespec started;
};

typedef unsigned (*route_fn)(struct syncd_call *call, struct syncd_reply *reply);

static unsigned route_healthz(struct syncd_call *call, struct syncd_reply *reply);
static unsigned route_metrics(struct syncd_call *call, struct syncd_reply *reply);

struct route {
	const char *method;
	const char *path;
	route_fn fn;
};

static const struct route routes[] = {
        {"GET", "/healthz", route_healthz},
        {"GET", "/metrics", route_metrics},
};
#define ROUTE_COUNT (sizeof(routes) / sizeof(routes[0]))

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

static unsigned route_healthz(struct syncd_call *call, struct syncd_reply *reply)
{
	PGconn *c = syncd_pool_get(call->sd->pool, 2000);
	if(c == NULL) return syncd_error(reply, 503, "unavailable", "database unavailable");
	PGresult *res = PQexec(c, "SELECT 1");
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
	PQclear(res);
	syncd_pool_put(call->sd->pool, c, !ok);
	if(!ok) return syncd_error(reply, 503, "unavailable", "database unavailable");
	reply->status = 200;
	reply->json = json_pack("{s:s}", "status", "ok");
	return 200;
}

static unsigned route_metrics(struct syncd_call *call, struct syncd_reply *reply)
{
	struct syncd *sd = call->sd;
	char buf[2048];
	int size, in_use;
	int n = 0;

	syncd_pool_stats(sd->pool, &size, &in_use);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n,
	              "# HELP mqsyncd_requests_total HTTP requests by status class.\n"
	              "# TYPE mqsyncd_requests_total counter\n");
	pthread_mutex_lock(&sd->metrics_lock);
	for(int i = 1; i < 6; i++) {
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "mqsyncd_requests_total{status=\"%dxx\"} %lu\n", i,
		              sd->requests_by_status[i]);
	}
	pthread_mutex_unlock(&sd->metrics_lock);
	snprintf(buf + n, sizeof(buf) - (size_t)n,
	         "# HELP mqsyncd_db_pool_connections Database pool size.\n"
	         "# TYPE mqsyncd_db_pool_connections gauge\n"
	         "mqsyncd_db_pool_connections %d\n"
	         "# HELP mqsyncd_db_pool_in_use Database connections borrowed right now.\n"
	         "# TYPE mqsyncd_db_pool_in_use gauge\n"
	         "mqsyncd_db_pool_in_use %d\n",
	         size, in_use);
	reply->status = 200;
	reply->text = strdup(buf);
	reply->content_type = "text/plain; version=0.0.4";
	return 200;
}

/* Finds the handler for method+path; sets *allowed when the path exists under another method. */
static route_fn route_find(const char *method, const char *path, bool *path_exists)
{
	*path_exists = false;
	for(size_t i = 0; i < ROUTE_COUNT; i++) {
		if(strcmp(routes[i].path, path) != 0) continue;
		*path_exists = true;
		if(!strcmp(routes[i].method, method)) return routes[i].fn;
	}
	return NULL;
}

static enum MHD_Result send_reply(struct syncd *sd, struct MHD_Connection *conn, struct syncd_reply *reply)
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
	if(text == NULL) {
		reply->status = 503;
		text = strdup("{\"error\":{\"code\":\"unavailable\",\"message\":\"out of memory\"}}");
		ctype = "application/json";
	}
	resp = MHD_create_response_from_buffer(text ? strlen(text) : 0, text, MHD_RESPMEM_MUST_FREE);
	if(resp == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype ? ctype : "text/plain");
	if(reply->status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	ret = MHD_queue_response(conn, reply->status, resp);
	MHD_destroy_response(resp);
	pthread_mutex_lock(&sd->metrics_lock);
	if(reply->status / 100 < 6) sd->requests_by_status[reply->status / 100]++;
	pthread_mutex_unlock(&sd->metrics_lock);
	return ret;
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
		*con_cls = req;
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
	if(req->too_large) {
		syncd_error(&reply, 413, "too_large", "request body exceeds %d bytes", SYNCD_BODY_MAX);
		return send_reply(sd, conn, &reply);
	}
	bool exists;
	route_fn fn = route_find(method, url, &exists);
	if(fn == NULL) {
		if(exists)
			syncd_error(&reply, 405, "method_not_allowed", "%s is not allowed on %s", method, url);
		else
			syncd_error(&reply, 404, "not_found", "no such endpoint");
		return send_reply(sd, conn, &reply);
	}
	struct syncd_call call = {sd, method, url, req->body, req->len, conn};
	fn(&call, &reply);
	return send_reply(sd, conn, &reply);
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
	struct request *req = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if(req == NULL) return;
	free(req->body);
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
		mqs_log(MQS_LOG_ERR, "--listen: '%s' is not an IPv4 address", host);
		return NULL;
	}
	sd = calloc(1, sizeof(*sd));
	if(sd == NULL) return NULL;
	pthread_mutex_init(&sd->metrics_lock, NULL);
	sd->pool = syncd_pool_new(cfg->db, (int)cfg->threads);
	if(sd->pool == NULL) goto fail;
	sd->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, port, NULL,
	                              NULL, on_request, sd, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
	                              MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)cfg->threads,
	                              MHD_OPTION_NOTIFY_COMPLETED, request_completed, sd, MHD_OPTION_CONNECTION_TIMEOUT,
	                              (unsigned int)120, MHD_OPTION_END);
	if(sd->daemon == NULL) {
		mqs_log(MQS_LOG_ERR, "cannot listen on %s", cfg->listen);
		goto fail;
	}
	mqs_log(MQS_LOG_INFO, "listening on %s with %ld threads", cfg->listen, cfg->threads);
	return sd;

fail:
	syncd_pool_free(sd->pool);
	pthread_mutex_destroy(&sd->metrics_lock);
	free(sd);
	return NULL;
}

void syncd_stop(struct syncd *sd)
{
	if(sd == NULL) return;
	MHD_stop_daemon(sd->daemon);
	syncd_pool_free(sd->pool);
	pthread_mutex_destroy(&sd->metrics_lock);
	free(sd);
}

struct syncd_pool *syncd_pool(struct syncd *sd)
{
	return sd->pool;
}
