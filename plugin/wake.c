/* wake: a loopback MQTT 3.1.1 connection to this broker that ends its 100 ms idle wait.
 *
 * Mosquitto 2.0 gives plugins no way to wake the main loop from another thread; socket activity
 * does. After a commit, a database thread sends a tiny QoS 0 PUBLISH on this connection; the
 * broker thread drops it in MESSAGE and drains the result queue at the TICK that follows. The
 * connection authenticates with credentials generated per process, known only to it. Packets are
 * written by hand (two fixed shapes) so no client library shares the broker's address space. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "plugin.h"
#include "util.h"

static void hex(char *out, const uint8_t *in, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for(size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

void mqs_wake_init(struct mqs_wake *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL); /* default attributes: cannot fail on Linux */
	w->fd = -1;
	atomic_store(&w->pending, false);
}

bool mqs_wake_configure(struct mqs_wake *w, const char *address)
{
	uint8_t rnd[24];
	int port = 0;
	char host[sizeof(w->host)] = "";

	if(strcmp(address, "none") != 0) {
		const char *colon = strrchr(address, ':');
		int64_t n;
		if(colon == NULL || (size_t)(colon - address) >= sizeof(host) || colon == address) return false;
		if(!mqs_parse_int(colon + 1, 1, 65535, &n)) return false;
		memcpy(host, address, (size_t)(colon - address));
		host[colon - address] = '\0';
		struct in_addr a;
		if(inet_pton(AF_INET, host, &a) != 1) return false;
		port = (int)n;
	}
	if(RAND_bytes(rnd, sizeof(rnd)) != 1) return false;
	memcpy(w->host, host, sizeof(host));
	w->port = port;
	snprintf(w->username, sizeof(w->username), "mqsync-wake-");
	hex(w->username + strlen(w->username), rnd, 8);
	hex(w->password, rnd + 8, 16);
	snprintf(w->topic, sizeof(w->topic), "system/mqsync-wake");
	return true;
}

bool mqs_wake_is_credential(const struct mqs_wake *w, const char *username, const char *password)
{
	if(username == NULL || password == NULL || w->username[0] == '\0') return false; /* not configured */
	size_t ul = strlen(w->username), pl = strlen(w->password);
	if(strlen(username) != ul || strlen(password) != pl) return false;
	return CRYPTO_memcmp(username, w->username, ul) == 0 && CRYPTO_memcmp(password, w->password, pl) == 0;
}

static size_t put_str(uint8_t *buf, const char *s)
{
	size_t n = strlen(s);
	buf[0] = (uint8_t)(n >> 8);
	buf[1] = (uint8_t)(n & 0xff);
	memcpy(buf + 2, s, n);
	return n + 2;
}

/* Called with w->lock held. */
static void close_locked(struct mqs_wake *w)
{
	if(w->fd >= 0) close(w->fd);
	w->fd = -1;
}

void mqs_wake_tick(struct mqs_wake *w)
{
	uint8_t pkt[256];
	size_t n = 0, body;
	time_t now = time(NULL);

	if(w->port == 0) return;
	pthread_mutex_lock(&w->lock);
	if(w->fd >= 0 || now == w->last_attempt) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	w->last_attempt = now;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if(fd < 0) {
		pthread_mutex_unlock(&w->lock);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)w->port);
	inet_pton(AF_INET, w->host, &sa.sin_addr);
	/* Loopback: the kernel completes the handshake from the listen backlog, without the broker
	 * thread (which is us) having to accept first. */
	if(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
		close(fd);
		pthread_mutex_unlock(&w->lock);
		return;
	}
	/* CONNECT, MQTT 3.1.1, clean session, no keepalive, username + password. */
	body = 10 + 2 + strlen(w->username) + 2 + strlen(w->username) + 2 + strlen(w->password);
	pkt[n++] = 0x10;
	pkt[n++] = (uint8_t)body; /* < 128 */
	n += put_str(pkt + n, "MQTT");
	pkt[n++] = 4;
	pkt[n++] = 0xC2;
	pkt[n++] = 0;
	pkt[n++] = 0;
	n += put_str(pkt + n, w->username); /* client id */
	n += put_str(pkt + n, w->username);
	n += put_str(pkt + n, w->password);
	w->fd = fd;
	/* The connect may still be in progress: send() then fails with EAGAIN/ENOTCONN and the next
	 * tick retries. */
	if(send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) close_locked(w);
	pthread_mutex_unlock(&w->lock);
}

void mqs_wake_poke(struct mqs_wake *w)
{
	uint8_t pkt[64];
	size_t n = 0;

	if(w->port == 0 || atomic_exchange(&w->pending, true)) return;
	pkt[n++] = 0x30; /* PUBLISH, QoS 0 */
	pkt[n++] = (uint8_t)(2 + strlen(w->topic));
	n += put_str(pkt + n, w->topic);
	pthread_mutex_lock(&w->lock);
	if(w->fd >= 0 && send(w->fd, pkt, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n) close_locked(w);
	pthread_mutex_unlock(&w->lock);
}

void mqs_wake_clear(struct mqs_wake *w)
{
	atomic_store(&w->pending, false);
}

void mqs_wake_close(struct mqs_wake *w)
{
	pthread_mutex_lock(&w->lock);
	close_locked(w);
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_destroy(&w->lock);
}
