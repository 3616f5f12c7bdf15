/* hmap: a small chained hash map from byte-string keys to pointers. Not thread-safe. */
#include "hmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *next;
	uint64_t hash;
	size_t keylen;
	void *value;
	unsigned char key[]; /* keylen bytes + NUL */
};

struct hmap {
	struct entry **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	void (*free_value)(void *);
};

/* FNV-1a, 64 bit. */
static uint64_t hash_bytes(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ULL;
	for(size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

struct hmap *hmap_new(void (*free_value)(void *))
{
	struct hmap *m = calloc(1, sizeof(*m));
	if(m == NULL) return NULL;
	m->nbuckets = 16;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if(m->buckets == NULL) {
		free(m);
		return NULL;
	}
	m->free_value = free_value;
	return m;
}

static struct entry **find_slot(const struct hmap *m, const void *key, size_t keylen, uint64_t h)
{
	struct entry **pp = &m->buckets[h & (m->nbuckets - 1)];
	while(*pp != NULL) {
		struct entry *e = *pp;
		if(e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) return pp;
		pp = &e->next;
	}
	return pp;
}

void *hmap_get(const struct hmap *m, const void *key, size_t keylen)
{
	struct entry **pp = find_slot(m, key, keylen, hash_bytes(key, keylen));
	return *pp ? (*pp)->value : NULL;
}

static void grow(struct hmap *m)
{
	size_t n = m->nbuckets * 2;
	struct entry **b = calloc(n, sizeof(*b));
	if(b == NULL) return; /* keep working with longer chains */
	for(size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i];
		while(e != NULL) {
			struct entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

bool hmap_put(struct hmap *m, const void *key, size_t keylen, void *value)
{
	uint64_t h = hash_bytes(key, keylen);
	struct entry **pp = find_slot(m, key, keylen, h);

	if(*pp != NULL) {
		if(m->free_value && (*pp)->value != value) m->free_value((*pp)->value);
		(*pp)->value = value;
		return true;
	}
	struct entry *e = malloc(sizeof(*e) + keylen + 1);
	if(e == NULL) return false;
	e->next = NULL;
	e->hash = h;
	e->keylen = keylen;
	e->value = value;
	memcpy(e->key, key, keylen);
	e->key[keylen] = '\0';
	*pp = e;
	m->count++;
	if(m->count > m->nbuckets) grow(m);
	return true;
}

void *hmap_take(struct hmap *m, const void *key, size_t keylen)
{
	struct entry **pp = find_slot(m, key, keylen, hash_bytes(key, keylen));
	struct entry *e = *pp;
	if(e == NULL) return NULL;
	void *v = e->value;
	*pp = e->next;
	free(e);
	m->count--;
	return v;
}

bool hmap_del(struct hmap *m, const void *key, size_t keylen)
{
	struct entry **pp = find_slot(m, key, keylen, hash_bytes(key, keylen));
	if(*pp == NULL) return false;
	void *v = hmap_take(m, key, keylen);
	if(m->free_value) m->free_value(v);
	return true;
}

size_t hmap_count(const struct hmap *m)
{
	return m->count;
}

void hmap_each(const struct hmap *m, void (*fn)(const void *key, size_t keylen, void *value, void *arg), void *arg)
{
	for(size_t i = 0; i < m->nbuckets; i++) {
		for(struct entry *e = m->buckets[i]; e != NULL; e = e->next) fn(e->key, e->keylen, e->value, arg);
	}
}

void hmap_free(struct hmap *m)
{
	if(m == NULL) return;
	for(size_t i = 0; i < m->nbuckets; i++) {
		struct entry *e = m->buckets[i];
		while(e != NULL) {
			struct entry *next = e->next;
			if(m->free_value) m->free_value(e->value);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	free(m);
}
