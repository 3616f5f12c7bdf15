/* metrics: request counters by route and status, latency histograms, messages returned, rendered
 * in the Prometheus text format for GET /metrics. Thread-safe (one mutex). */
#ifndef MQS_SYNCD_METRICS_H
#define MQS_SYNCD_METRICS_H

#include <stddef.h>
#include "util.h"

struct syncd_metrics;

/* Gauges sampled at render time. */
struct syncd_gauges {
	int pool_size, pool_in_use;
	size_t longpoll_waiting;
	int listener_connected;
};

/* routes: nroutes labels (kept by pointer; must outlive the metrics). Index nroutes is used for
 * requests that matched no route ("unmatched"). Returns NULL on out of memory. */
MQS_MUST_CHECK struct syncd_metrics *metrics_new(const char *const *routes, size_t nroutes);
void metrics_free(struct syncd_metrics *m);

/* Records one answered request. route may be nroutes (unmatched). */
void metrics_observe(struct syncd_metrics *m, size_t route, unsigned status, double seconds);

/* Counts messages returned by sync and history. */
void metrics_messages(struct syncd_metrics *m, size_t n);

/* Renders everything; returns a malloc'ed string (caller frees) or NULL on out of memory. */
MQS_MUST_CHECK char *metrics_render(struct syncd_metrics *m, const struct syncd_gauges *g);

#endif
