#include "runnel_testing.h"

#include <stdlib.h>
#include <string.h>

static uint32_t u32(const uint8_t *at) {
    return at[0] | at[1] << 8 | at[2] << 16 | (uint32_t)at[3] << 24;
}

static void put32(uint8_t *at, uint32_t value) {
    for (int i = 0; i < 4; i++) at[i] = (uint8_t)(value >> (8 * i));
}

/* A batch of one message from source "test": header, data area, then the tables. */
static uint8_t *encode(const runnel_test_message *m, size_t *len) {
    size_t topic_len = strlen(m->topic), data = 4 + topic_len + m->key.len + m->value.len;
    for (size_t h = 0; h < m->header_count; h++) data += m->headers[h].name.len + m->headers[h].value.len;
    size_t topics_at = 40 + data, messages_at = topics_at + 8, headers_at = messages_at + 48;
    *len = headers_at + 16 * m->header_count;
    uint8_t *b = calloc(1, *len);
    if (!b) abort();
    size_t at = 0;
#define PUSH(ptr, n, span_at)                                                                  \
    do {                                                                                       \
        put32((span_at), (uint32_t)at);                                                        \
        put32((span_at) + 4, (uint32_t)(n));                                                   \
        if (n) memcpy(b + 40 + at, (ptr), (n));                                                \
        at += (n);                                                                             \
    } while (0)
    memcpy(b, "RNB1", 4);
    uint32_t fields[] = {1, 1, (uint32_t)m->header_count, (uint32_t)topics_at, (uint32_t)messages_at,
                         (uint32_t)headers_at, 40};
    for (int i = 0; i < 7; i++) put32(b + 4 + 4 * i, fields[i]);
    PUSH("test", 4, b + 32);
    PUSH(m->topic, topic_len, b + topics_at);
    uint8_t *record = b + messages_at;
    memset(record, 0xFF, 16); /* no offset, no timestamp */
    put32(record + 16, 0);
    if (m->key.ptr) PUSH(m->key.ptr, m->key.len, record + 24);
    else put32(record + 24, 0xFFFFFFFF);
    PUSH(m->value.ptr, m->value.len, record + 32);
    put32(record + 44, (uint32_t)m->header_count);
    for (size_t h = 0; h < m->header_count; h++) {
        PUSH(m->headers[h].name.ptr, m->headers[h].name.len, b + headers_at + 16 * h);
        PUSH(m->headers[h].value.ptr, m->headers[h].value.len, b + headers_at + 16 * h + 8);
    }
#undef PUSH
    return b;
}

runnel_test_outcome runnel_test_handle(const runnel_test_message *message) {
    size_t len, answer_len;
    uint8_t *batch = encode(message, &len);
    runnel_test_outcome outcome = {0};
    uint8_t *a = outcome.answer = runnel_run_handle(batch, len, &answer_len);
    free(batch);
    const uint8_t *data = a + u32(a + 36);
    const uint8_t *record = a + u32(a + 24);
    outcome.failure = (int)u32(record + 4);
    outcome.failure_message = (runnel_str){(const char *)data + u32(record + 8), u32(record + 12)};
    outcome.output_count = u32(record);
    for (size_t i = 0; i < outcome.output_count && i < RUNNEL_TEST_MAX; i++) {
        const uint8_t *r = a + u32(a + 28) + 32 * i;
        runnel_test_output *o = &outcome.outputs[i];
        if (u32(r)) {
            const uint8_t *t = a + u32(a + 20) + 8 * (u32(r) - 1);
            o->topic = (runnel_str){(const char *)data + u32(t), u32(t + 4)};
        }
        o->key = u32(r + 4) == 0xFFFFFFFF ? RUNNEL_NO_KEY : (runnel_bytes){data + u32(r + 4), u32(r + 8)};
        o->value = (runnel_bytes){data + u32(r + 12), u32(r + 16)};
        o->header_count = u32(r + 24);
        for (size_t h = 0; h < o->header_count && h < RUNNEL_TEST_MAX; h++) {
            const uint8_t *hr = a + u32(a + 32) + 16 * (u32(r + 20) + h);
            o->headers[h].name = (runnel_str){(const char *)data + u32(hr), u32(hr + 4)};
            o->headers[h].value = (runnel_bytes){data + u32(hr + 8), u32(hr + 12)};
        }
    }
    return outcome;
}

void runnel_test_free(runnel_test_outcome *outcome) {
    free(outcome->answer);
    outcome->answer = NULL;
}
