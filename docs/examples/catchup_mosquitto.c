/* catchup_mosquitto: what a device does on reconnect, over MQTT only, with libmosquitto (docs/clients.md).
 *
 * Connects (MQTT v5; username = user id, password = token), subscribes to users/{uid}/inbox, then
 * pages through everything it missed: publishes {"limit":1000,"id":"pN"[,"after":NEXT]} to
 * users/{uid}/sync, receives the page's messages on groups/{gid}/messages (user properties id, seq,
 * sender, ts and replay=1), then {"event":"sync","id":"pN",...,"has_more":B,"next":T} on its inbox;
 * repeats with after = next while has_more. At the end it acknowledges the highest seq of each
 * group with a receipt {"delivered": SEQ} on groups/{gid}/receipts, and prints "next TOKEN": keep
 * it, it is where this device resumes next time (pass it as the 5th argument).
 *
 * Build: cc -o catchup catchup_mosquitto.c -lmosquitto -ljansson
 * Run:   ./catchup HOST PORT USER TOKEN [AFTER]
 * Prints "group seq payload-bytes" per message. Exit status 0 when caught up. */
#include <jansson.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GROUPS 64

struct app {
	const char *user;
	char inbox[128];
	char want_id[32]; /* the id of the request in flight */
	bool page_done, has_more, failed;
	char *next; /* malloc'ed: the last page's token */
	long count;
	struct {
		char gid[65];
		long long seq; /* the highest seq seen */
	} groups[MAX_GROUPS];
	int ngroups;
};

/* Remembers the highest seq per group; false when (gid, seq) was seen already (live and replayed). */
static bool note(struct app *a, const char *gid, long long seq)
{
	for(int i = 0; i < a->ngroups; i++) {
		if(strcmp(a->groups[i].gid, gid) != 0) continue;
		if(seq <= a->groups[i].seq) return false;
		a->groups[i].seq = seq;
		return true;
	}
	if(a->ngroups == MAX_GROUPS) return true;
	snprintf(a->groups[a->ngroups].gid, sizeof(a->groups[0].gid), "%s", gid);
	a->groups[a->ngroups++].seq = seq;
	return true;
}

static void on_sync_event(struct app *a, const char *payload, int len)
{
	json_t *ev = json_loadb(payload, (size_t)len, 0, NULL);
	const char *id = json_string_value(json_object_get(ev, "id"));
	const char *event = json_string_value(json_object_get(ev, "event"));

	if(event != NULL && strcmp(event, "sync") == 0 && id != NULL && strcmp(id, a->want_id) == 0) {
		const char *next = json_string_value(json_object_get(ev, "next"));
		a->failed = json_object_get(ev, "error") != NULL || next == NULL;
		a->has_more = json_is_true(json_object_get(ev, "has_more"));
		if(next != NULL) {
			free(a->next);
			a->next = strdup(next);
		}
		a->page_done = true;
	}
	json_decref(ev); /* other inbox events (member_added, ...) are an app's business */
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg,
                       const mosquitto_property *props)
{
	struct app *a = obj;
	char gid[65] = "", *name = NULL, *value = NULL;
	long long seq = -1;

	(void)m;
	if(strcmp(msg->topic, a->inbox) == 0) {
		on_sync_event(a, msg->payload, msg->payloadlen);
		return;
	}
	if(sscanf(msg->topic, "groups/%64[^/]/messages", gid) != 1) return;
	for(const mosquitto_property *p =
	            mosquitto_property_read_string_pair(props, MQTT_PROP_USER_PROPERTY, &name, &value, false);
	    p != NULL; p = mosquitto_property_read_string_pair(p, MQTT_PROP_USER_PROPERTY, &name, &value, true)) {
		if(strcmp(name, "seq") == 0) seq = atoll(value);
		free(name);
		free(value);
	}
	if(seq > 0 && note(a, gid, seq)) {
		printf("%s %lld %d\n", gid, seq, msg->payloadlen);
		a->count++;
	}
}

/* Asks for one page and runs the loop until its sync event. False on a connection error. */
static bool page(struct mosquitto *m, struct app *a, int n)
{
	char topic[128];

	snprintf(a->want_id, sizeof(a->want_id), "p%d", n);
	json_t *req = json_pack("{s:i,s:s}", "limit", 1000, "id", a->want_id);
	if(req == NULL) return false;
	if(a->next != NULL) json_object_set_new(req, "after", json_string(a->next));
	char *s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	snprintf(topic, sizeof(topic), "users/%s/sync", a->user);
	a->page_done = false;
	int rc = s ? mosquitto_publish_v5(m, NULL, topic, (int)strlen(s), s, 1, false, NULL) : MOSQ_ERR_NOMEM;
	free(s);
	while(rc == MOSQ_ERR_SUCCESS && !a->page_done) rc = mosquitto_loop(m, 1000, 1);
	return rc == MOSQ_ERR_SUCCESS;
}

int main(int argc, char **argv)
{
	struct app a = {0};
	struct mosquitto *m;
	int ok = 0;

	if(argc < 5) {
		fprintf(stderr, "usage: %s HOST PORT USER TOKEN [AFTER]\n", argv[0]);
		return 2;
	}
	a.user = argv[3];
	a.next = argc > 5 ? strdup(argv[5]) : NULL;
	snprintf(a.inbox, sizeof(a.inbox), "users/%s/inbox", a.user);
	mosquitto_lib_init();
	m = mosquitto_new(NULL, true, &a);
	if(m == NULL) return 1;
	mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	/* One PUBACK per message: without TCP_NODELAY, Nagle holds them back while the broker waits,
	 * having sent max_inflight_messages (20) unacknowledged. */
	mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	mosquitto_username_pw_set(m, argv[3], argv[4]);
	mosquitto_message_v5_callback_set(m, on_message);
	if(mosquitto_connect(m, argv[1], atoi(argv[2]), 60) == MOSQ_ERR_SUCCESS &&
	   mosquitto_subscribe(m, NULL, a.inbox, 1) == MOSQ_ERR_SUCCESS) {
		ok = 1;
		for(int n = 1; ok; n++) {
			if(!page(m, &a, n) || a.failed)
				ok = 0; /* failed: retry later with the same token */
			else if(!a.has_more)
				break;
		}
	}
	for(int i = 0; ok && i < a.ngroups; i++) { /* acknowledge: receipts (SPEC 3.3) */
		char topic[128], body[64];
		snprintf(topic, sizeof(topic), "groups/%s/receipts", a.groups[i].gid);
		snprintf(body, sizeof(body), "{\"delivered\":%lld}", a.groups[i].seq);
		mosquitto_publish_v5(m, NULL, topic, (int)strlen(body), body, 1, false, NULL);
	}
	for(int i = 0; i < 10; i++) mosquitto_loop(m, 50, 1); /* let the receipts go out */
	if(ok) printf("next %s\n", a.next ? a.next : "");
	fprintf(stderr, "%ld messages\n", a.count);
	mosquitto_disconnect(m);
	mosquitto_destroy(m);
	mosquitto_lib_cleanup();
	free(a.next);
	return ok ? 0 : 1;
}
