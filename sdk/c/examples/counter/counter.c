/* Counts the messages seen per key and sends each message on with its running count in a
 * header: an example of a handler configured by init that keeps state across messages.
 *
 * Settings:
 * - `header` (optional, default `count`): the name of the header that carries the count.
 *
 * The value is sent unchanged, with its key and headers, to the default topic. A message
 * without a key is counted apart from one with an empty key, as Kafka tells them apart. Counts
 * live in the plugin instance: each instance counts the messages it handled, from zero when it
 * starts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runnel.h"

static char *header;
static size_t header_len;

/* Counts per key, in an open-addressing hash table that doubles when half full. */
typedef struct {
    uint8_t *key; /* a copy; NULL for an empty slot */
    size_t key_len;
    bool has_key; /* false for the messages without a key */
    uint64_t count;
} slot;

static slot *slots;
static size_t slot_count, used;

static uint64_t hash(const uint8_t *bytes, size_t len, bool has_key) {
    uint64_t h = has_key ? 0xcbf29ce484222325ull : 0x84222325cbf29ce4ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ bytes[i]) * 0x100000001b3ull;
    return h;
}

static slot *find(const uint8_t *key, size_t len, bool has_key) {
    size_t i = hash(key, len, has_key) & (slot_count - 1);
    for (;; i = (i + 1) & (slot_count - 1)) {
        slot *s = &slots[i];
        if (!s->key) return s;
        if (s->has_key == has_key && s->key_len == len && memcmp(s->key, key, len) == 0) return s;
    }
}

static void grow_table(void) {
    slot *old = slots;
    size_t old_count = slot_count;
    slot_count = slot_count ? slot_count * 2 : 64;
    slots = calloc(slot_count, sizeof *slots);
    if (!slots) abort();
    for (size_t i = 0; i < old_count; i++)
        if (old[i].key) *find(old[i].key, old[i].key_len, old[i].has_key) = old[i];
    free(old);
}

static uint64_t count(runnel_bytes key) {
    if (2 * (used + 1) > slot_count) grow_table();
    bool has_key = key.ptr != NULL;
    slot *s = find(key.ptr, key.len, has_key);
    if (!s->key) {
        /* One byte more, so that an empty key still has a non-NULL copy marking the slot. */
        s->key = malloc(key.len + 1);
        if (!s->key) abort();
        if (key.len) memcpy(s->key, key.ptr, key.len);
        s->key_len = key.len;
        s->has_key = has_key;
        used++;
    }
    return ++s->count;
}

bool runnel_init(const runnel_config *config) {
    runnel_str name;
    if (!runnel_config_get(config, "header", &name)) name = runnel_cstr("count");
    if (name.len == 0) return runnel_init_error("setting `header` must not be empty");
    if (name.len >= 7 && memcmp(name.ptr, "runnel-", 7) == 0)
        return runnel_init_error("setting `header` is `%.*s`, but header names starting with "
                                 "`runnel-` are set by the host",
                                 (int)name.len, name.ptr);
    free(header);
    header = malloc(name.len);
    if (!header) abort();
    memcpy(header, name.ptr, name.len);
    header_len = name.len;
    return true;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%llu", (unsigned long long)count(runnel_message_key(message)));
    runnel_send(out, runnel_message_value(message));
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    runnel_output_header(out, (runnel_str){header, header_len}, (runnel_bytes){(const uint8_t *)digits, (size_t)len});
    return RUNNEL_OK;
}
