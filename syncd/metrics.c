/* metrics: request counters, latency histograms and gauges in the Prometheus text format. */
#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 500, 503};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))
static const double buckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30, 60};
#define NBUCKET (sizeof(buckets) / sizeof(buckets[0]))

struct route_stats {
	unsigned long long by_status[NSTATUS + 1]; /* last: any other status */
	unsigned long long hist[NBUCKET];          /* non-cumulative; rendered cumulatively */
	unsigned long long count;
	double sum;
};

struct syncd_metrics {
	pthread_mutex_t lock;
	const char *const *names;
	size_t nroutes;
	struct route_stats *routes; /* nroutes + 1 */
	unsigned long long messages;
};

struct syncd_metrics *metrics_new(const char *const *routes, size_t nroutes)
{
	struct syncd_metrics *m = calloc(1, sizeof(*m));
	if(m == NULL) return NULL;
	m->routes = calloc(nroutes + 1, sizeof(*m->routes));
	if(m->routes == NULL) {
		free(m);
		return NULL;
	}
	m->names = routes;
	m->nroutes = nroutes;
	pthread_mutex_init(&m->lock, NULL);
	return m;
}

void metrics_free(struct syncd_metrics *m)
{
	if(m == NULL) return;
	pthread_mutex_destroy(&m->lock);
	free(m->routes);
	free(m);
}

void metrics_observe(struct syncd_metrics *m, size_t route, unsigned status, double seconds)
{
	size_t s = 0;
	size_t b = 0;

	if(route > m->nroutes) route = m->nroutes;
	while(s < NSTATUS && statuses[s] != status) s++;
	while(b < NBUCKET && seconds > buckets[b]) b++;
	pthread_mutex_lock(&m->lock);
	struct route_stats *r = &m->routes[route];
	r->by_status[s]++;
	if(b < NBUCKET) r->hist[b]++;
	r->count++;
	r->sum += seconds;
	pthread_mutex_unlock(&m->lock);
}

void metrics_messages(struct syncd_metrics *m, size_t n)
{
	pthread_mutex_lock(&m->lock);
	m->messages += n;
	pthread_mutex_unlock(&m->lock);
}

struct out {
	char *s;
	size_t len, cap;
	int oom;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if(o->oom) return;
	for(;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if(n < 0) {
			o->oom = 1;
			return;
		}
		if((size_t)n < o->cap - o->len) break;
		size_t cap = o->cap * 2 + (size_t)n;
		char *s = realloc(o->s, cap);
		if(s == NULL) {
			o->oom = 1;
			return;
		}
		o->s = s;
		o->cap = cap;
	}
	o->len += (size_t)n;
}

char *metrics_render(struct syncd_metrics *m, const struct syncd_gauges *g)
{
	struct out o = {malloc(8192), 0, 8192, 0};

	if(o.s == NULL) return NULL;
	o.s[0] = '\0';
	pthread_mutex_lock(&m->lock);
	outf(&o, "# HELP mqsyncd_requests_total HTTP requests answered, by route and status.\n"
	         "# TYPE mqsyncd_requests_total counter\n");
	for(size_t r = 0; r <= m->nroutes; r++) {
		const char *name = r < m->nroutes ? m->names[r] : "unmatched";
		for(size_t s = 0; s <= NSTATUS; s++) {
			unsigned long long v = m->routes[r].by_status[s];
			if(v == 0) continue;
			if(s < NSTATUS)
				outf(&o, "mqsyncd_requests_total{route=\"%s\",status=\"%u\"} %llu\n", name, statuses[s],
				     v);
			else
				outf(&o, "mqsyncd_requests_total{route=\"%s\",status=\"other\"} %llu\n", name, v);
		}
	}
	outf(&o, "# HELP mqsyncd_request_duration_seconds Time from request to response (long-polls include "
	         "the wait).\n"
	         "# TYPE mqsyncd_request_duration_seconds histogram\n");
	for(size_t r = 0; r <= m->nroutes; r++) {
		const struct route_stats *st = &m->routes[r];
		const char *name = r < m->nroutes ? m->names[r] : "unmatched";
		unsigned long long cum = 0;
		if(st->count == 0) continue;
		for(size_t b = 0; b < NBUCKET; b++) {
			cum += st->hist[b];
			outf(&o, "mqsyncd_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n", name,
			     buckets[b], cum);
		}
		outf(&o, "mqsyncd_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n", name, st->count);
		outf(&o, "mqsyncd_request_duration_seconds_sum{route=\"%s\"} %.6f\n", name, st->sum);
		outf(&o, "mqsyncd_request_duration_seconds_count{route=\"%s\"} %llu\n", name, st->count);
	}
	outf(&o,
	     "# HELP mqsyncd_messages_returned_total Messages returned by sync and history.\n"
	     "# TYPE mqsyncd_messages_returned_total counter\n"
	     "mqsyncd_messages_returned_total %llu\n",
	     m->messages);
	pthread_mutex_unlock(&m->lock);
	outf(&o,
	     "# HELP mqsyncd_db_pool_connections Database pool size.\n"
	     "# TYPE mqsyncd_db_pool_connections gauge\n"
	     "mqsyncd_db_pool_connections %d\n"
	     "# HELP mqsyncd_db_pool_in_use Database connections borrowed right now.\n"
	     "# TYPE mqsyncd_db_pool_in_use gauge\n"
	     "mqsyncd_db_pool_in_use %d\n"
	     "# HELP mqsyncd_longpoll_waiting Sync requests held waiting for messages.\n"
	     "# TYPE mqsyncd_longpoll_waiting gauge\n"
	     "mqsyncd_longpoll_waiting %zu\n"
	     "# HELP mqsyncd_listener_connected 1 while the LISTEN connection is up.\n"
	     "# TYPE mqsyncd_listener_connected gauge\n"
	     "mqsyncd_listener_connected %d\n",
	     g->pool_size, g->pool_in_use, g->longpoll_waiting, g->listener_connected);
	if(o.oom) {
		free(o.s);
		return NULL;
	}
	return o.s;
}
