/* util: small helpers both programs need: strict integer parsing and condition-variable deadlines. */
#ifndef MQS_UTIL_H
#define MQS_UTIL_H

/* On functions whose result must be checked (an error code, a must-check bool, owned memory). */
#define MQS_MUST_CHECK __attribute__((warn_unused_result))

#include <stdbool.h>
#include <time.h>

/* Parses all of s as a base-10 integer in [min, max] into *out. False (and *out unchanged) on an
 * empty string, trailing characters, overflow or a value out of range. */
bool mqs_parse_long(const char *s, long min, long max, long *out);

/* The CLOCK_REALTIME instant timeout_ms from now, for pthread_cond_timedwait. */
struct timespec mqs_deadline_ms(long timeout_ms);

#endif
