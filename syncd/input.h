/* input: parsing and validation of untrusted request input: integers, ids, bearer headers, content
 * types and JSON bodies. Pure functions (no database, no HTTP server), unit-tested directly. */
#ifndef MQS_SYNCD_INPUT_H
#define MQS_SYNCD_INPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "util.h"

/* Decodes %HH escapes of a URL path or query value in place and returns the new length. "%00"
 * (and malformed escapes) stay as they are, so a NUL can never cut a path short: "fam%00" is then
 * simply an invalid id. */
size_t input_unescape(char *s);

/* Returns the token of an "Authorization: Bearer <token>" header value (scheme case-insensitive,
 * one or more spaces) and its length, or NULL when the header is missing or malformed. The
 * returned pointer points into header. */
MQS_MUST_CHECK const char *input_bearer(const char *header, size_t *len);

/* True when a Content-Type header value names application/json (parameters such as
 * "; charset=utf-8" allowed, case-insensitive). */
bool input_is_json_type(const char *content_type);

/* Parses body (len bytes) as one JSON object. Returns a new reference (caller decrefs), or NULL
 * with a message in err: malformed JSON, invalid UTF-8, integers beyond 64 bits, duplicate keys,
 * trailing data, or a top-level value that is not an object. */
MQS_MUST_CHECK json_t *input_json_object(const char *body, size_t len, char *err, size_t errlen);

/* Fails (false, message in err) when obj has a key not in allowed (a NULL-terminated list). */
MQS_MUST_CHECK bool input_only_keys(json_t *obj, const char *const *allowed, char *err, size_t errlen);

/* Field readers. name is used in error messages (e.g. "acks[2].seq"). A missing or JSON null
 * field is an error when required, otherwise leaves *out untouched and sets *present = false
 * (present may be NULL). Wrong types, out-of-range numbers and invalid ids fail with err set. */
MQS_MUST_CHECK bool input_field_int(json_t *obj, const char *key, const char *name, int64_t min, int64_t max,
                                    bool required, int64_t *out, bool *present, char *err, size_t errlen);
MQS_MUST_CHECK bool input_field_bool(json_t *obj, const char *key, const char *name, bool required, bool *out,
                                     bool *present, char *err, size_t errlen);
/* *out points into obj (valid while obj lives). maxlen counts bytes. */
MQS_MUST_CHECK bool input_field_string(json_t *obj, const char *key, const char *name, size_t maxlen, bool required,
                                       const char **out, bool *present, char *err, size_t errlen);
/* A user or group id ([A-Za-z0-9_-]{1,64}). */
MQS_MUST_CHECK bool input_field_id(json_t *obj, const char *key, const char *name, bool required, const char **out,
                                   bool *present, char *err, size_t errlen);

/* Validates a JSON value (not a field) as an integer / id; name is used in the message. */
MQS_MUST_CHECK bool input_value_int(json_t *v, const char *name, int64_t min, int64_t max, int64_t *out, char *err,
                                    size_t errlen);
MQS_MUST_CHECK bool input_value_id(json_t *v, const char *name, const char **out, char *err, size_t errlen);

#endif
