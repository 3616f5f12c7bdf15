/* util: small helpers both programs need (see util.h). Owns no memory. */
#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

bool mqs_parse_long(const char *s, long min, long max, long *out)
{
	char *end = NULL;

	if(s == NULL) return false;
	errno = 0;
	long v = strtol(s, &end, 10);
	if(errno != 0 || end == s || *end != '\0' || v < min || v > max) return false;
	*out = v;
	return true;
}

bool mqs_grow(char **buf, size_t *cap, size_t need, size_t first)
{
	if(need <= *cap) return true;
	size_t c = *cap ? *cap : first;
	while(c < need) {
		if(c > SIZE_MAX / 2) return false;
		c *= 2;
	}
	char *b = realloc(*buf, c);
	if(b == NULL) return false;
	*buf = b;
	*cap = c;
	return true;
}

struct timespec mqs_deadline_ms(long timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
	if(ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}
