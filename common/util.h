/* util: small helpers both programs need: strict integer parsing, buffer growth and condition-variable
 * deadlines. */
#ifndef MQS_UTIL_H
#define MQS_UTIL_H

/* On functions whose result must be checked (an error code, a must-check bool, owned memory). */
#define MQS_MUST_CHECK __attribute__((warn_unused_result))

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Parses all of s as a base-10 integer in [min, max] into *out. False (and *out unchanged) on an
 * empty string, trailing characters, overflow or a value out of range. */
bool mqs_parse_long(const char *s, long min, long max, long *out);

/* Makes *buf (*cap bytes allocated; NULL and 0 at first) hold at least need bytes, doubling from
 * first bytes. False on overflow or out of memory, with *buf and *cap unchanged (still the caller's
 * to free). */
MQS_MUST_CHECK bool mqs_grow(char **buf, size_t *cap, size_t need, size_t first);

/* The CLOCK_REALTIME instant timeout_ms from now, for pthread_cond_timedwait. */
struct timespec mqs_deadline_ms(long timeout_ms);

#endif
