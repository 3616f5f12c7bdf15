/* token: bearer/MQTT credentials: generation, hashing and constant-time comparison (SPEC 2). */
#include "token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "codec.h"

bool mqs_token_new(char out[MQS_TOKEN_LEN + 1])
{
	unsigned char raw[MQS_TOKEN_RAW_BYTES];

	out[0] = '\0';
	if(RAND_bytes(raw, sizeof(raw)) != 1) return false;
	_Static_assert(MQS_TOKEN_LEN == (4 * MQS_TOKEN_RAW_BYTES + 2) / 3,
	               "MQS_TOKEN_LEN is base64url of the raw bytes");
	mqs_b64_encode(raw, sizeof(raw), out, true); /* MQS_TOKEN_LEN chars + NUL */
	OPENSSL_cleanse(raw, sizeof(raw));
	return true;
}

bool mqs_token_hash(const char *token, size_t len, unsigned char out[MQS_TOKEN_HASH_LEN])
{
	unsigned int outlen = 0;
	return EVP_Digest(token, len, out, &outlen, EVP_sha256(), NULL) == 1 && outlen == MQS_TOKEN_HASH_LEN;
}

bool mqs_token_hash_eq(const unsigned char a[MQS_TOKEN_HASH_LEN], const unsigned char b[MQS_TOKEN_HASH_LEN])
{
	return CRYPTO_memcmp(a, b, MQS_TOKEN_HASH_LEN) == 0;
}
