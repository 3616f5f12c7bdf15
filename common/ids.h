/* ids: validation of user and group identifiers (SPEC 2). */
#ifndef MQS_IDS_H
#define MQS_IDS_H

#include <stdbool.h>
#include <stddef.h>

#define MQS_ID_MAX 64

/* True when s matches [A-Za-z0-9_-]{1,64}. NULL is invalid. */
bool mqs_id_valid(const char *s);

/* Same check on a length-delimited string (not NUL-terminated). */
bool mqs_id_valid_n(const char *s, size_t len);

#endif
