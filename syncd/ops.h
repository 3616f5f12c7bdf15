/* ops: the operations endpoints GET /healthz and GET /metrics (docs/api.md "Operations"). */
#ifndef MQS_SYNCD_OPS_H
#define MQS_SYNCD_OPS_H

struct syncd_call;
struct syncd_reply;

/* 200 {"status":"ok"} after a SELECT 1, or 503. */
unsigned ops_healthz(struct syncd_call *call, struct syncd_reply *reply);

/* The Prometheus text; runs without a database connection (route flag RF_NO_DB). */
unsigned ops_metrics(struct syncd_call *call, struct syncd_reply *reply);

#endif
