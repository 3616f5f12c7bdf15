/* mqbench: an MQTT v5 load generator (one publisher, one subscriber, one topic) that reports
 * throughput or paced publish-to-receive latency as one JSON line on stdout.
 *
 * The subscriber runs in libmosquitto's own thread; the publisher is driven from the main thread
 * with mosquitto_loop(), so a publish is written to the socket at once (no hand-off to a network
 * thread) and in-flight QoS 1/2 messages are bounded by our own window.
 *
 * Payload layout (fixed 100 bytes by default): send time (CLOCK_MONOTONIC ns, host order, 8 bytes;
 * the scheduled slot when paced), message index (8 bytes), run magic (8 bytes), filler. The
 * subscriber checks the magic, counts each index once and records its latency, so duplicates and
 * losses are reported, never hidden.
 *
 * Exit status: 0 when every message was acknowledged and received exactly once, 1 on a usage error,
 * 2 when the run failed (connect, refusal, loss, duplicate, timeout); the JSON line is printed in
 * both of the latter cases when a run took place. */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HDR_LEN 24

enum mode { MODE_THROUGHPUT, MODE_LATENCY };

struct opts {
	const char *host;
	int port;
	const char *user, *password;         /* publisher; NULL: anonymous */
	const char *sub_user, *sub_password; /* subscriber; default: the publisher's */
	const char *topic;
	enum mode mode;
	long count, warmup;
	long rate; /* latency mode: messages per second */
	int qos;
	int window; /* publisher's in-flight bound (QoS 1/2) */
	int payload;
	int receive_max; /* subscriber's MQTT v5 receive maximum */
	int timeout_s;
};

/* State shared by the subscriber thread and the main thread; everything under lock. */
struct sub_state {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t magic;
	long total; /* warmup + count: indexes 0 .. total-1 */
	long warmup;
	uint8_t *seen;      /* one byte per index */
	int64_t *lat_ns;    /* per measured index (index - warmup), -1 until received */
	long received;      /* distinct indexes */
	long duplicates;    /* indexes received again */
	long foreign;       /* messages without our magic or out of range */
	int64_t last_rx_ns; /* receive time of the most recent new message */
	bool connected, subscribed, sub_failed;
	int sub_granted;
};

struct pub_state {
	long inflight; /* sent, not yet acknowledged (QoS > 0) */
	long acked;    /* acknowledged with a success reason */
	long refused;  /* acknowledged with reason >= 0x80 */
	int first_refusal;
	bool connected, conn_failed;
	int conn_rc;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mqbench [--host H] [--port P] [--user U --password PW] [--sub-user U --sub-password PW]\n"
	           "               --topic T\n"
	           "               [--mode throughput|latency] [--count N] [--warmup N] [--rate MSG_PER_S]\n"
	           "               [--qos 0|1|2] [--window N] [--payload BYTES] [--receive-max N] [--timeout S]\n"
	           "Prints one JSON line. Exit 0: all messages acknowledged and received once; 2: run failed.\n");
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if(errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
	*out = v;
	return true;
}

/* Parses argv into o. False (after a message on stderr) on any invalid or missing option. */
static bool parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
	                                         {"port", required_argument, NULL, 'p'},
	                                         {"user", required_argument, NULL, 'u'},
	                                         {"password", required_argument, NULL, 'P'},
	                                         {"topic", required_argument, NULL, 't'},
	                                         {"mode", required_argument, NULL, 'm'},
	                                         {"count", required_argument, NULL, 'n'},
	                                         {"warmup", required_argument, NULL, 'w'},
	                                         {"rate", required_argument, NULL, 'r'},
	                                         {"qos", required_argument, NULL, 'q'},
	                                         {"window", required_argument, NULL, 'W'},
	                                         {"payload", required_argument, NULL, 's'},
	                                         {"receive-max", required_argument, NULL, 'R'},
	                                         {"timeout", required_argument, NULL, 'T'},
	                                         {"sub-user", required_argument, NULL, 'U'},
	                                         {"sub-password", required_argument, NULL, 'X'},
	                                         {"help", no_argument, NULL, 'H'},
	                                         {NULL, 0, NULL, 0}};
	long v;
	int c;

	*o = (struct opts){.host = "127.0.0.1",
	                   .port = 1883,
	                   .mode = MODE_THROUGHPUT,
	                   .count = 10000,
	                   .warmup = 0,
	                   .rate = 5000,
	                   .qos = 1,
	                   .window = 500,
	                   .payload = 100,
	                   .receive_max = 1000,
	                   .timeout_s = 60};
	while((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch(c) {
		case 'h':
			o->host = optarg;
			break;
		case 'p':
			if(!parse_long(optarg, 1, 65535, &v)) goto bad;
			o->port = (int)v;
			break;
		case 'u':
			o->user = optarg;
			break;
		case 'P':
			o->password = optarg;
			break;
		case 'U':
			o->sub_user = optarg;
			break;
		case 'X':
			o->sub_password = optarg;
			break;
		case 't':
			o->topic = optarg;
			break;
		case 'm':
			if(strcmp(optarg, "throughput") == 0)
				o->mode = MODE_THROUGHPUT;
			else if(strcmp(optarg, "latency") == 0)
				o->mode = MODE_LATENCY;
			else
				goto bad;
			break;
		case 'n':
			if(!parse_long(optarg, 1, 100000000, &o->count)) goto bad;
			break;
		case 'w':
			if(!parse_long(optarg, 0, 100000000, &o->warmup)) goto bad;
			break;
		case 'r':
			if(!parse_long(optarg, 1, 10000000, &o->rate)) goto bad;
			break;
		case 'q':
			if(!parse_long(optarg, 0, 2, &v)) goto bad;
			o->qos = (int)v;
			break;
		case 'W':
			if(!parse_long(optarg, 1, 65535, &v)) goto bad;
			o->window = (int)v;
			break;
		case 's':
			if(!parse_long(optarg, HDR_LEN, 268435455, &v)) goto bad;
			o->payload = (int)v;
			break;
		case 'R':
			if(!parse_long(optarg, 1, 65535, &v)) goto bad;
			o->receive_max = (int)v;
			break;
		case 'T':
			if(!parse_long(optarg, 1, 3600, &v)) goto bad;
			o->timeout_s = (int)v;
			break;
		case 'H':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return false;
		}
		continue;
	bad:
		fprintf(stderr, "mqbench: invalid option value '%s'\n", optarg);
		return false;
	}
	if(optind != argc) {
		fprintf(stderr, "mqbench: unexpected argument '%s'\n", argv[optind]);
		return false;
	}
	if(o->topic == NULL) {
		fprintf(stderr, "mqbench: --topic is required\n");
		return false;
	}
	if((o->user == NULL) != (o->password == NULL) || (o->sub_user == NULL) != (o->sub_password == NULL)) {
		fprintf(stderr, "mqbench: --user and --password (and --sub-user and --sub-password) go together\n");
		return false;
	}
	if(o->sub_user == NULL) {
		o->sub_user = o->user;
		o->sub_password = o->password;
	}
	return true;
}

/* ---- subscriber (libmosquitto's network thread) ---------------------------------------------- */

static void sub_on_connect(struct mosquitto *mosq, void *arg, int rc, int flags, const mosquitto_property *props)
{
	struct sub_state *s = arg;
	(void)flags;
	(void)props;
	pthread_mutex_lock(&s->lock);
	if(rc == 0)
		s->connected = true;
	else
		s->sub_failed = true;
	s->sub_granted = rc;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	(void)mosq;
}

static void sub_on_subscribe(struct mosquitto *mosq, void *arg, int mid, int count, const int *granted,
                             const mosquitto_property *props)
{
	struct sub_state *s = arg;
	(void)mosq;
	(void)mid;
	(void)props;
	pthread_mutex_lock(&s->lock);
	s->sub_granted = count > 0 ? granted[0] : 0x80;
	if(count < 1 || granted[0] >= 0x80)
		s->sub_failed = true;
	else
		s->subscribed = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

static void sub_on_message(struct mosquitto *mosq, void *arg, const struct mosquitto_message *msg,
                           const mosquitto_property *props)
{
	struct sub_state *s = arg;
	int64_t rx = now_ns();
	int64_t sent;
	uint64_t idx, magic;

	(void)mosq;
	(void)props;
	pthread_mutex_lock(&s->lock);
	if(msg->payloadlen < HDR_LEN) {
		s->foreign++;
		goto out;
	}
	memcpy(&sent, msg->payload, 8);
	memcpy(&idx, (const uint8_t *)msg->payload + 8, 8);
	memcpy(&magic, (const uint8_t *)msg->payload + 16, 8);
	if(magic != s->magic || idx >= (uint64_t)s->total) {
		s->foreign++;
		goto out;
	}
	if(s->seen[idx]) {
		s->duplicates++;
		goto out;
	}
	s->seen[idx] = 1;
	s->received++;
	s->last_rx_ns = rx;
	if((long)idx >= s->warmup) s->lat_ns[idx - (uint64_t)s->warmup] = rx - sent;
	if(s->received == s->total || s->received == s->warmup) pthread_cond_broadcast(&s->cond);
out:
	pthread_mutex_unlock(&s->lock);
}

/* ---- publisher (main thread) ---------------------------------------------------------------- */

static void pub_on_connect(struct mosquitto *mosq, void *arg, int rc, int flags, const mosquitto_property *props)
{
	struct pub_state *ps = arg;
	(void)mosq;
	(void)flags;
	(void)props;
	if(rc == 0) {
		ps->connected = true;
	} else {
		ps->conn_failed = true;
		ps->conn_rc = rc;
	}
}

static void pub_on_publish(struct mosquitto *mosq, void *arg, int mid, int reason, const mosquitto_property *props)
{
	struct pub_state *ps = arg;
	(void)mosq;
	(void)mid;
	(void)props;
	ps->inflight--;
	if(reason >= 0x80) {
		if(ps->refused == 0) ps->first_refusal = reason;
		ps->refused++;
	} else {
		ps->acked++;
	}
}

/* Creates a v5 client with TCP_NODELAY. NULL (after a message) on failure. */
static struct mosquitto *client_new(const struct opts *o, const char *role, void *arg)
{
	char id[64];
	snprintf(id, sizeof(id), "mqbench-%s-%ld", role, (long)getpid());
	struct mosquitto *m = mosquitto_new(id, true, arg);
	if(m == NULL) {
		fprintf(stderr, "mqbench: mosquitto_new: %s\n", strerror(errno));
		return NULL;
	}
	int rc = mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1);
	const char *user = strcmp(role, "sub") == 0 ? o->sub_user : o->user;
	const char *pw = strcmp(role, "sub") == 0 ? o->sub_password : o->password;
	if(rc == MOSQ_ERR_SUCCESS && user != NULL) rc = mosquitto_username_pw_set(m, user, pw);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: %s client setup: %s\n", role, mosquitto_strerror(rc));
		mosquitto_destroy(m);
		return NULL;
	}
	return m;
}

/* Waits on the subscriber's condition until pred holds or the deadline (monotonic ns) passes.
 * Called with s->lock held. */
static bool sub_wait(struct sub_state *s, bool (*pred)(const struct sub_state *), int64_t deadline)
{
	while(!pred(s)) {
		int64_t left = deadline - now_ns();
		if(left <= 0) return false;
		if(left > 100000000) left = 100000000; /* re-check every 100 ms (the cond uses CLOCK_REALTIME) */
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += left % 1000000000;
		ts.tv_sec += left / 1000000000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&s->cond, &s->lock, &ts);
	}
	return true;
}

static bool pred_sub_ready(const struct sub_state *s)
{
	return s->subscribed || s->sub_failed;
}

static bool pred_all(const struct sub_state *s)
{
	return s->received >= s->total;
}

static bool pred_warm(const struct sub_state *s)
{
	return s->received >= s->warmup;
}

/* Runs the publisher's network loop once: waits up to timeout_ns (0: just polls) for the socket,
 * then reads, writes and does housekeeping. False when the connection broke. */
static bool pub_pump(struct mosquitto *pub, int64_t timeout_ns)
{
	struct pollfd pfd = {.fd = mosquitto_socket(pub), .events = POLLIN};
	struct timespec ts = {.tv_sec = timeout_ns / 1000000000, .tv_nsec = timeout_ns % 1000000000};
	int rc = MOSQ_ERR_SUCCESS;

	if(pfd.fd < 0) {
		fprintf(stderr, "mqbench: publisher: not connected\n");
		return false;
	}
	if(mosquitto_want_write(pub)) pfd.events |= POLLOUT;
	int n = ppoll(&pfd, 1, &ts, NULL);
	if(n < 0 && errno != EINTR) {
		fprintf(stderr, "mqbench: poll: %s\n", strerror(errno));
		return false;
	}
	if(n > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP))) rc = mosquitto_loop_read(pub, 1);
	if(rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(pub)) rc = mosquitto_loop_write(pub, 1);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_misc(pub);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: publisher: %s\n", mosquitto_strerror(rc));
		return false;
	}
	return true;
}

/* Publishes message idx (header + filler in buf). False on a publish or connection error. */
/* Publishes message idx stamped with t: its scheduled slot when paced (so a late send counts as
 * latency: no coordinated omission), the actual send time otherwise. */
static bool pub_one(struct mosquitto *pub, struct pub_state *ps, const struct opts *o, uint8_t *buf, uint64_t magic,
                    uint64_t idx, int64_t t)
{
	memcpy(buf, &t, 8);
	memcpy(buf + 8, &idx, 8);
	memcpy(buf + 16, &magic, 8);
	int rc = mosquitto_publish_v5(pub, NULL, o->topic, o->payload, buf, o->qos, false, NULL);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: publish: %s\n", mosquitto_strerror(rc));
		return false;
	}
	if(o->qos > 0) ps->inflight++;
	return true;
}

/* Publishes indexes [from, to): as fast as the window allows (rate 0) or paced at rate msg/s.
 * Paced messages carry their scheduled slot as send time, so time spent waiting for the window or
 * the CPU before the send is part of their latency. *behind counts paced messages sent more than
 * 1 ms after their slot. False on error or timeout. */
static bool publish_range(struct mosquitto *pub, struct pub_state *ps, const struct opts *o, uint8_t *buf,
                          uint64_t magic, long from, long to, long rate, int64_t deadline, long *behind)
{
	int64_t start = now_ns();
	for(long i = from; i < to; i++) {
		int64_t slot = rate > 0 ? start + (int64_t)((double)(i - from) * 1e9 / (double)rate) : 0;
		while(ps->inflight >= o->window) {
			if(now_ns() > deadline) {
				fprintf(stderr, "mqbench: timed out waiting for acknowledgements\n");
				return false;
			}
			if(!pub_pump(pub, 10000000)) return false;
		}
		if(rate > 0) {
			int64_t now = now_ns();
			/* Serve acknowledgements while waiting for the slot (no busy wait: this machine has
			 * two cores and the broker needs them). */
			while(now < slot) {
				if(!pub_pump(pub, slot - now)) return false;
				now = now_ns();
			}
			if(now - slot > 1000000) (*behind)++;
		}
		if(!pub_one(pub, ps, o, buf, magic, (uint64_t)i, rate > 0 ? slot : now_ns())) return false;
		/* Read acknowledgements without blocking, so the window keeps moving. */
		if(!pub_pump(pub, 0)) return false;
	}
	return true;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* The value at quantile q of sorted v[0..n) (nearest rank), in microseconds. */
static double pct_us(const int64_t *v, long n, double q)
{
	if(n == 0) return -1;
	long k = (long)(q * (double)n + 0.999999) - 1;
	if(k < 0) k = 0;
	if(k >= n) k = n - 1;
	return (double)v[k] / 1000.0;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sub_state s = {0};
	struct pub_state ps = {0};
	struct mosquitto *sub = NULL, *pub = NULL;
	uint8_t *buf = NULL;
	int64_t *sorted = NULL;
	int status = 2, rc;
	bool ran = false, sub_loop = false;
	int64_t t_first = 0, t_last_sent = 0, deadline;
	long behind = 0, nlat = 0;

	if(!parse_args(argc, argv, &o)) return 1;
	mosquitto_lib_init();
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	s.total = o.warmup + o.count;
	s.warmup = o.warmup;
	s.magic = ((uint64_t)getpid() << 32) ^ (uint64_t)now_ns() ^ 0x6d71626e6368ULL;
	s.seen = calloc((size_t)s.total, 1);
	s.lat_ns = malloc((size_t)o.count * sizeof(*s.lat_ns));
	buf = malloc((size_t)o.payload);
	if(s.seen == NULL || s.lat_ns == NULL || buf == NULL) {
		fprintf(stderr, "mqbench: out of memory\n");
		goto done;
	}
	for(long i = 0; i < o.count; i++) s.lat_ns[i] = -1;
	memset(buf, 'x', (size_t)o.payload);
	deadline = now_ns() + (int64_t)o.timeout_s * 1000000000;

	/* Subscriber first, subscribed before anything is published. */
	sub = client_new(&o, "sub", &s);
	if(sub == NULL) goto done;
	rc = mosquitto_int_option(sub, MOSQ_OPT_RECEIVE_MAXIMUM, o.receive_max);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: receive maximum: %s\n", mosquitto_strerror(rc));
		goto done;
	}
	mosquitto_connect_v5_callback_set(sub, sub_on_connect);
	mosquitto_subscribe_v5_callback_set(sub, sub_on_subscribe);
	mosquitto_message_v5_callback_set(sub, sub_on_message);
	rc = mosquitto_connect(sub, o.host, o.port, 60);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: subscriber connect to %s:%d: %s\n", o.host, o.port, mosquitto_strerror(rc));
		goto done;
	}
	rc = mosquitto_subscribe_v5(sub, NULL, o.topic, o.qos, 0, NULL);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_start(sub);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: subscribe: %s\n", mosquitto_strerror(rc));
		goto done;
	}
	sub_loop = true;
	pthread_mutex_lock(&s.lock);
	bool ready = sub_wait(&s, pred_sub_ready, deadline);
	bool sub_ok = s.subscribed;
	int granted = s.sub_granted;
	pthread_mutex_unlock(&s.lock);
	if(!ready || !sub_ok) {
		fprintf(stderr, "mqbench: subscriber not subscribed to '%s' (%s, code %d)\n", o.topic,
		        ready ? "refused" : "timeout", granted);
		goto done;
	}

	pub = client_new(&o, "pub", &ps);
	if(pub == NULL) goto done;
	rc = mosquitto_int_option(pub, MOSQ_OPT_SEND_MAXIMUM, o.window);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: send maximum: %s\n", mosquitto_strerror(rc));
		goto done;
	}
	mosquitto_connect_v5_callback_set(pub, pub_on_connect);
	mosquitto_publish_v5_callback_set(pub, pub_on_publish);
	rc = mosquitto_connect(pub, o.host, o.port, 60);
	if(rc != MOSQ_ERR_SUCCESS) {
		fprintf(stderr, "mqbench: publisher connect to %s:%d: %s\n", o.host, o.port, mosquitto_strerror(rc));
		goto done;
	}
	while(!ps.connected && !ps.conn_failed && now_ns() < deadline) {
		if(!pub_pump(pub, 100000000)) goto done;
	}
	if(!ps.connected) {
		fprintf(stderr, "mqbench: publisher not connected (%s)\n",
		        ps.conn_failed ? mosquitto_reason_string(ps.conn_rc) : "timeout");
		goto done;
	}

	/* Warm-up: same path, not measured; wait until all of it has arrived. */
	if(o.warmup > 0) {
		if(!publish_range(pub, &ps, &o, buf, s.magic, 0, o.warmup, 0, deadline, &behind)) goto done;
		for(;;) {
			pthread_mutex_lock(&s.lock);
			bool warm = pred_warm(&s);
			pthread_mutex_unlock(&s.lock);
			if(warm || now_ns() > deadline) break;
			if(!pub_pump(pub, 5000000)) goto done;
		}
		behind = 0;
	}

	ran = true;
	t_first = now_ns();
	if(!publish_range(pub, &ps, &o, buf, s.magic, o.warmup, s.total, o.mode == MODE_LATENCY ? o.rate : 0, deadline,
	                  &behind))
		goto report;
	t_last_sent = now_ns();
	/* Drain: remaining acknowledgements, then every message at the subscriber. */
	while(ps.inflight > 0 && now_ns() < deadline) {
		if(!pub_pump(pub, 10000000)) goto report;
	}
	/* Every message acknowledged: wait for the rest at the subscriber, but not past 5 s without
	 * a new one (a broker that dropped messages never sends them; the run fails sooner). */
	for(;;) {
		pthread_mutex_lock(&s.lock);
		bool all = pred_all(&s);
		int64_t last = s.last_rx_ns > t_last_sent ? s.last_rx_ns : t_last_sent;
		pthread_mutex_unlock(&s.lock);
		if(all || now_ns() > deadline || (ps.inflight == 0 && now_ns() - last > 5000000000LL)) break;
		if(!pub_pump(pub, 5000000)) goto report;
	}

report:
	pthread_mutex_lock(&s.lock);
	if(sub_loop) {
		/* Give late duplicates a moment to show up (they would mean double delivery). */
		int64_t grace = now_ns() + 100000000;
		pthread_mutex_unlock(&s.lock);
		while(now_ns() < grace) {
			if(pub == NULL || !ps.connected || !pub_pump(pub, 10000000)) usleep(10000);
		}
		pthread_mutex_lock(&s.lock);
	}
	sorted = malloc((size_t)o.count * sizeof(*sorted));
	if(sorted != NULL) {
		for(long i = 0; i < o.count; i++) {
			if(s.lat_ns[i] >= 0) sorted[nlat++] = s.lat_ns[i];
		}
		qsort(sorted, (size_t)nlat, sizeof(*sorted), cmp_i64);
	}
	long received = s.received - (s.received > s.warmup ? s.warmup : s.received);
	double secs = (double)((s.last_rx_ns > t_first ? s.last_rx_ns : now_ns()) - t_first) / 1e9;
	double send_secs = (double)((t_last_sent > t_first ? t_last_sent : now_ns()) - t_first) / 1e9;
	bool ok = ran && s.received == s.total && s.duplicates == 0 && ps.refused == 0 &&
	          (o.qos == 0 || ps.inflight == 0);
	if(ran) {
		printf("{\"mode\":\"%s\",\"ok\":%s,\"qos\":%d,\"payload\":%d,\"count\":%ld,\"warmup\":%ld,"
		       "\"published\":%ld,"
		       "\"window\":%d,\"received\":%ld,\"duplicates\":%ld,\"foreign\":%ld,\"refused\":%ld,"
		       "\"first_refusal\":%d,\"seconds\":%.4f,\"msgs_per_s\":%.0f,\"send_msgs_per_s\":%.0f",
		       o.mode == MODE_LATENCY ? "latency" : "throughput", ok ? "true" : "false", o.qos, o.payload,
		       o.count, o.warmup, s.total, o.window, received, s.duplicates, s.foreign, ps.refused,
		       ps.first_refusal, secs, secs > 0 ? (double)received / secs : 0.0,
		       send_secs > 0 ? (double)o.count / send_secs : 0.0);
		if(o.mode == MODE_LATENCY) printf(",\"rate\":%ld,\"late_sends\":%ld", o.rate, behind);
		if(sorted != NULL) {
			printf(",\"lat_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
			       pct_us(sorted, nlat, 0.50), pct_us(sorted, nlat, 0.90), pct_us(sorted, nlat, 0.99),
			       pct_us(sorted, nlat, 0.999), nlat ? (double)sorted[nlat - 1] / 1000.0 : -1.0);
		}
		printf("}\n");
		fflush(stdout);
	}
	pthread_mutex_unlock(&s.lock);
	if(ok) status = 0;
	if(ran && !ok) {
		fprintf(stderr,
		        "mqbench: run incomplete: received %ld of %ld, %ld duplicates, %ld refused, %ld unacked\n",
		        s.received, s.total, s.duplicates, ps.refused, ps.inflight);
	}

done:
	if(pub != NULL) {
		if(ps.connected) mosquitto_disconnect(pub);
		mosquitto_destroy(pub);
	}
	if(sub != NULL) {
		mosquitto_disconnect(sub);
		if(sub_loop) mosquitto_loop_stop(sub, false);
		mosquitto_destroy(sub);
	}
	mosquitto_lib_cleanup();
	free(sorted);
	free(buf);
	free(s.seen);
	free(s.lat_ns);
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return status;
}
