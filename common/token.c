/* token: bearer/MQTT credentials: generation, hashing and constant-time comparison (SPEC 2). */
#include "token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

bool mqs_token_new(char out[MQS_TOKEN_LEN + 1])
{
	unsigned char raw[MQS_TOKEN_RAW_BYTES];
	unsigned char b64[64];

	out[0] = '\0';
	if(RAND_bytes(raw, sizeof(raw)) != 1) return false;
	int n = EVP_EncodeBlock(b64, raw, sizeof(raw)); /* 44 chars incl. one '=' */
	OPENSSL_cleanse(raw, sizeof(raw));
	if(n < MQS_TOKEN_LEN) return false;
	for(int i = 0; i < MQS_TOKEN_LEN; i++) {
		char c = (char)b64[i];
		if(c == '+')
			c = '-';
		else if(c == '/')
			c = '_';
		out[i] = c;
	}
	out[MQS_TOKEN_LEN] = '\0';
	OPENSSL_cleanse(b64, sizeof(b64));
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
