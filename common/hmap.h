/* hmap: a small chained hash map from byte-string keys to pointers (plugin and mqsyncd). Not thread-safe. */
#ifndef MQS_HMAP_H
#define MQS_HMAP_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct hmap;

/* free_value, if not NULL, is called on values replaced, removed, or left at hmap_free. */
MQS_MUST_CHECK struct hmap *hmap_new(void (*free_value)(void *));

/* Value for key, or NULL. */
void *hmap_get(const struct hmap *m, const void *key, size_t keylen);

/* Inserts or replaces (freeing the old value). The key is copied. False on out of memory (the
 * value is then not owned by the map). */
MQS_MUST_CHECK bool hmap_put(struct hmap *m, const void *key, size_t keylen, void *value);

/* Removes key, freeing its value. Returns whether it was there. */
bool hmap_del(struct hmap *m, const void *key, size_t keylen);

/* Removes key and returns its value without freeing it (NULL if absent). */
void *hmap_take(struct hmap *m, const void *key, size_t keylen);

size_t hmap_count(const struct hmap *m);

/* Calls fn for every entry; fn must not modify the map. */
void hmap_each(const struct hmap *m, void (*fn)(const void *key, size_t keylen, void *value, void *arg), void *arg);

/* Frees the map, its keys and (with free_value) its values. Accepts NULL. */
void hmap_free(struct hmap *m);

/* Convenience for NUL-terminated string keys. */
#define hmap_gets(m, s)    hmap_get((m), (s), strlen(s))
#define hmap_puts(m, s, v) hmap_put((m), (s), strlen(s), (v))
#define hmap_dels(m, s)    hmap_del((m), (s), strlen(s))

#endif
