/* util: small helpers both programs need (see util.h). Owns no memory. */
#include "util.h"

#include <stdint.h>
#include <stdlib.h>

bool mqs_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, limit = (uint64_t)INT64_MAX;
	int digits = 0;

	if(s == NULL) return false;
	if(*s == '-') {
		neg = true;
		limit += 1; /* INT64_MIN's magnitude */
		s++;
	}
	for(; *s; s++, digits++) {
		if(*s < '0' || *s > '9') return false;
		uint64_t d = (uint64_t)(*s - '0');
		if(v > (limit - d) / 10) return false; /* v * 10 + d would pass the limit */
		v = v * 10 + d;
	}
	if(digits == 0) return false;
	int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;
	if(r < min || r > max) return false;
	*out = r;
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
