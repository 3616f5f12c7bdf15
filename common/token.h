/* token: bearer/MQTT credentials: generation, hashing and constant-time comparison (SPEC 2). */
#ifndef MQS_TOKEN_H
#define MQS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define MQS_TOKEN_RAW_BYTES 32 /* 256 random bits */
#define MQS_TOKEN_LEN       43 /* base64url of 32 bytes, no padding */
#define MQS_TOKEN_HASH_LEN  32 /* SHA-256 */

/* Writes a new random token (MQS_TOKEN_LEN chars + NUL) into out. Returns false if the system's
 * secure random source fails; out is then an empty string. */
MQS_MUST_CHECK bool mqs_token_new(char out[MQS_TOKEN_LEN + 1]);

/* SHA-256 of the len bytes of token into out. Returns false only if OpenSSL fails. */
MQS_MUST_CHECK bool mqs_token_hash(const char *token, size_t len, unsigned char out[MQS_TOKEN_HASH_LEN]);

/* Constant-time equality of two hashes. */
bool mqs_token_hash_eq(const unsigned char a[MQS_TOKEN_HASH_LEN], const unsigned char b[MQS_TOKEN_HASH_LEN]);

#endif
