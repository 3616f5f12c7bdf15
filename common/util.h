/* util: small helpers both programs need: strict integer parsing, buffer growth and condition-variable
 * deadlines. */
#ifndef MQS_UTIL_H
#define MQS_UTIL_H

/* On functions whose result must be checked (an error code, a must-check bool, owned memory). */
#define MQS_MUST_CHECK __attribute__((warn_unused_result))

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Parses all of s, -?[0-9]+ (no white space, no '+'), as a base-10 integer in [min, max] into *out:
 * the one strict integer parser for configuration, request parameters and JSON-free text input.
 * False (and *out unchanged) on NULL, an empty string, any other character, overflow of int64 or a
 * value out of range. */
MQS_MUST_CHECK bool mqs_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/* Makes *buf (*cap bytes allocated; NULL and 0 at first) hold at least need bytes, doubling from
 * first bytes. False on overflow or out of memory, with *buf and *cap unchanged (still the caller's
 * to free). */
MQS_MUST_CHECK bool mqs_grow(char **buf, size_t *cap, size_t need, size_t first);

/* The CLOCK_REALTIME instant timeout_ms from now, for pthread_cond_timedwait. */
struct timespec mqs_deadline_ms(long timeout_ms);

#endif
