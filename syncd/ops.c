/* ops: GET /healthz and GET /metrics. */
#include "ops.h"

#include "http.h"
#include "metrics.h"
#include "store.h"

unsigned ops_healthz(struct syncd_call *call, struct syncd_reply *reply)
{
	enum store_rc rc = store_ping(call->db);
	if(rc != STORE_OK) return syncd_store_error(reply, rc, "health check failed");
	return syncd_reply_json(reply, 200, json_pack("{s:s}", "status", "ok"));
}

unsigned ops_metrics(struct syncd_call *call, struct syncd_reply *reply)
{
	struct syncd_gauges g;

	syncd_gauges_sample(call->sd, &g);
	reply->text = metrics_render(syncd_metrics_of(call->sd), &g);
	if(reply->text == NULL) return syncd_oom(reply);
	reply->status = 200;
	reply->content_type = "text/plain; version=0.0.4";
	return 200;
}
