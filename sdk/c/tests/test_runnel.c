/* Native tests of the C SDK's reader and writer against wit/encoding-vectors.json, read from the
 * repository: `test_runnel PATH/TO/encoding-vectors.json`. The vectors are parsed with the JSON
 * reader of the json-router example. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../examples/json-router/json.h"
#include "../runnel.h"

static int failures;

#define CHECK(condition, ...)                                                                  \
    do {                                                                                       \
        if (!(condition)) {                                                                    \
            failures++;                                                                        \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fprintf(stderr, "\n");                                                             \
        }                                                                                      \
    } while (0)

void runnel_host_log(int level, const char *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, message);
}

/* ---------------------------------------------------------------- the handler under test */

static runnel_status (*current_handler)(const runnel_message *, runnel_outputs *);

bool runnel_init(const runnel_config *config) {
    runnel_str value;
    return runnel_config_require(config, "mode", &value);
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    return current_handler(message, out);
}

static void init_ok(void) {
    runnel_str settings[] = {runnel_cstr("mode"), runnel_cstr("test")};
    CHECK(runnel_run_init(settings, 1) == NULL, "init accepts its settings");
}

/* ---------------------------------------------------------------- helpers */

static uint8_t *unhex(const char *hex, size_t len, size_t *out_len) {
    uint8_t *bytes = malloc(len / 2 + 1);
    for (size_t i = 0; i + 1 < len; i += 2) {
        unsigned byte;
        sscanf(hex + i, "%2x", &byte);
        bytes[i / 2] = (uint8_t)byte;
    }
    *out_len = len / 2;
    return bytes;
}

/* snprintf that never runs past the end of its buffer, however much it is asked to write. */
static size_t append(char *out, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static size_t append(char *out, size_t size, const char *format, ...) {
    if (size <= 1) return 0;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(out, size, format, args);
    va_end(args);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static uint32_t u32(const uint8_t *at) { return at[0] | at[1] << 8 | at[2] << 16 | (uint32_t)at[3] << 24; }
static void put32(uint8_t *at, uint32_t v) { for (int i = 0; i < 4; i++) at[i] = (uint8_t)(v >> (8 * i)); }

static bool same(const void *a, size_t a_len, const char *b, size_t b_len) {
    return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static const json_value *field(const json_value *object, const char *name) {
    return json_get(object, name, strlen(name));
}

static int64_t json_int(const json_value *v) {
    return v->negative ? -(int64_t)v->magnitude : (int64_t)v->magnitude;
}

/* A batch of count messages, all on topic "in", value "x", no key, no headers. */
static uint8_t *plain_batch(size_t count, size_t *len) {
    *len = 40 + 4 + 8 + count * 48;
    uint8_t *b = calloc(1, *len);
    memcpy(b, "RNB1", 4);
    memcpy(b + 40, "inx", 3); /* source "in" and topic "in" share bytes; value "x" */
    put32(b + 4, (uint32_t)count);
    put32(b + 8, 1);
    put32(b + 16, 44);
    put32(b + 20, 52);
    put32(b + 24, 52);
    put32(b + 28, 40);
    put32(b + 36, 2);
    put32(b + 44, 0);
    put32(b + 48, 2);
    for (size_t i = 0; i < count; i++) {
        uint8_t *m = b + 52 + i * 48;
        memset(m, 0xFF, 16); /* offset and timestamp -1 */
        put32(m + 24, 0xFFFFFFFF);
        put32(m + 32, 2);
        put32(m + 36, 1);
    }
    return b;
}

/* ---------------------------------------------------------------- an answer reader */

/* Checks every rule of the encoding for an answer, as the host does, and writes what it holds
 * into out as text: one line per outcome, e.g. `ok [topic=- key=k value=HELLO h=1]` or
 * `transient: database down`. Returns NULL if valid, or why not. */
static const char *read_answer(const uint8_t *a, size_t len, size_t count, char *out, size_t out_size) {
    out[0] = '\0';
    if (len < 40 || memcmp(a, "RNO1", 4) != 0) return "bad header";
    if (u32(a + 4) != count) return "count differs";
    uint32_t topics = u32(a + 8), outputs = u32(a + 12), headers = u32(a + 16);
    uint64_t topics_at = u32(a + 20), outcomes_at = u32(a + 24), outputs_at = u32(a + 28);
    uint64_t headers_at = u32(a + 32), data_at = u32(a + 36);
    if (topics_at + topics * 8ull > len || outcomes_at + count * 16ull > len ||
        outputs_at + outputs * 32ull > len || headers_at + headers * 16ull > len || data_at > len)
        return "table outside the buffer";
    const uint8_t *data = a + data_at;
    uint64_t data_len = len - data_at;
#define SPAN_OK(at) ((uint64_t)u32(at) + u32((at) + 4) <= data_len)
    for (uint32_t k = 0; k < topics; k++)
        if (!SPAN_OK(a + topics_at + k * 8)) return "topic outside the data area";
    uint32_t start = 0;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        const uint8_t *o = a + outcomes_at + i * 16;
        uint32_t end = u32(o), kind = u32(o + 4);
        if (end < start || end > outputs) return "outputs end out of order";
        if (kind > 2) return "unknown kind";
        if (kind) {
            if (end != start) return "a failed message has outputs";
            if (!SPAN_OK(o + 8)) return "failure message outside the data area";
            n += append(out + n, out_size - n, "%s: %.*s\n", kind == 1 ? "transient" : "permanent",
                          (int)u32(o + 12), data + u32(o + 8));
            continue;
        }
        n += append(out + n, out_size - n, "ok");
        for (uint32_t j = start; j < end; j++) {
            const uint8_t *r = a + outputs_at + j * 32;
            uint32_t topic = u32(r);
            if (topic > topics) return "unknown topic";
            if (!SPAN_OK(r + 12)) return "value outside the data area";
            n += append(out + n, out_size - n, " [topic=");
            if (topic == 0) n += append(out + n, out_size - n, "-");
            else {
                const uint8_t *t = a + topics_at + (topic - 1) * 8;
                n += append(out + n, out_size - n, "%.*s", (int)u32(t + 4), data + u32(t));
            }
            if (u32(r + 4) == 0xFFFFFFFF) {
                if (u32(r + 8) != 0) return "no-key marker with a length";
                n += append(out + n, out_size - n, " key=-");
            } else {
                if (!SPAN_OK(r + 4)) return "key outside the data area";
                n += append(out + n, out_size - n, " key='%.*s'", (int)u32(r + 8), data + u32(r + 4));
            }
            n += append(out + n, out_size - n, " value=%.*s", (int)u32(r + 16), data + u32(r + 12));
            uint64_t first = u32(r + 20), hcount = u32(r + 24);
            if (first + hcount > headers) return "headers outside the table";
            for (uint64_t h = first; h < first + hcount; h++) {
                const uint8_t *hr = a + headers_at + h * 16;
                if (!SPAN_OK(hr) || !SPAN_OK(hr + 8)) return "header outside the data area";
                n += append(out + n, out_size - n, " %.*s=%.*s", (int)u32(hr + 4), data + u32(hr),
                              (int)u32(hr + 12), data + u32(hr + 8));
            }
            n += append(out + n, out_size - n, "]");
        }
        n += append(out + n, out_size - n, "\n");
        start = end;
    }
    if (start != outputs) return "outputs left over";
    return NULL;
}

/* The same text, from a vector's decoded content. */
static void describe_outcomes(const json_value *outcomes, char *out, size_t out_size) {
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < outcomes->count; i++) {
        const json_value *o = &outcomes->items[i], *failure = field(o, "failure");
        if (failure) {
            const json_value *message = field(failure, "message");
            n += append(out + n, out_size - n, "%s: %.*s\n", field(failure, "kind")->string,
                          (int)message->string_len, message->string);
            continue;
        }
        n += append(out + n, out_size - n, "ok");
        const json_value *outputs = field(o, "outputs");
        for (size_t j = 0; j < outputs->count; j++) {
            const json_value *r = &outputs->items[j], *topic = field(r, "topic"), *key = field(r, "key");
            n += append(out + n, out_size - n, " [topic=%s", topic->type == JSON_NULL ? "-" : topic->string);
            if (key->type == JSON_NULL) n += append(out + n, out_size - n, " key=-");
            else n += append(out + n, out_size - n, " key='%s'", key->string);
            n += append(out + n, out_size - n, " value=%s", field(r, "value")->string);
            const json_value *headers = field(r, "headers");
            for (size_t h = 0; h < headers->count; h++)
                n += append(out + n, out_size - n, " %s=%s", headers->items[h].items[0].string,
                              headers->items[h].items[1].string);
            n += append(out + n, out_size - n, "]");
        }
        n += append(out + n, out_size - n, "\n");
    }
}

/* ---------------------------------------------------------------- batch vectors */

static const json_value *expected_messages;
static size_t seen;

static runnel_status compare_with_vector(const runnel_message *m, runnel_outputs *out) {
    (void)out;
    const json_value *want = &expected_messages->items[seen++];
    runnel_str topic = runnel_message_topic(m);
    const json_value *topic_want = field(want, "topic");
    CHECK(same(topic.ptr, topic.len, topic_want->string, topic_want->string_len), "topic of message %zu", seen);
    CHECK(runnel_message_partition(m) == json_int(field(want, "partition")), "partition of message %zu", seen);
    CHECK(runnel_message_offset(m) == json_int(field(want, "offset")), "offset of message %zu", seen);
    int64_t millis;
    bool has_time = runnel_message_timestamp(m, &millis);
    const json_value *time_want = field(want, "timestamp");
    CHECK(has_time == (time_want->type != JSON_NULL), "timestamp presence of message %zu", seen);
    if (has_time) CHECK((uint64_t)millis == time_want->magnitude, "timestamp of message %zu", seen);
    runnel_bytes key = runnel_message_key(m);
    const json_value *key_want = field(want, "key");
    if (key_want->type == JSON_NULL) CHECK(key.ptr == NULL, "message %zu has no key", seen);
    else CHECK(key.ptr != NULL && same(key.ptr, key.len, key_want->string, key_want->string_len), "key of message %zu", seen);
    runnel_bytes value = runnel_message_value(m);
    const json_value *value_want = field(want, "value");
    CHECK(same(value.ptr, value.len, value_want->string, value_want->string_len), "value of message %zu", seen);
    const json_value *headers = field(want, "headers");
    CHECK(runnel_message_header_count(m) == headers->count, "header count of message %zu", seen);
    for (size_t h = 0; h < headers->count && h < runnel_message_header_count(m); h++) {
        runnel_header header = runnel_message_header_at(m, h);
        const json_value *pair = &headers->items[h];
        CHECK(same(header.name.ptr, header.name.len, pair->items[0].string, pair->items[0].string_len) &&
                  same(header.value.ptr, header.value.len, pair->items[1].string, pair->items[1].string_len),
              "header %zu of message %zu", h, seen);
    }
    return RUNNEL_OK;
}

static void test_batch_vectors(const json_value *vectors) {
    const json_value *batches = field(vectors, "batches");
    init_ok();
    for (size_t i = 0; i < batches->count; i++) {
        const json_value *vector = &batches->items[i];
        const json_value *hex = field(vector, "hex");
        size_t len, answer_len;
        uint8_t *batch = unhex(hex->string, hex->string_len, &len);
        expected_messages = field(vector, "messages");
        seen = 0;
        current_handler = compare_with_vector;
        free(runnel_run_handle(batch, len, &answer_len));
        CHECK(seen == expected_messages->count, "%s: every message was handled", field(vector, "name")->string);
        free(batch);
    }
}

/* ---------------------------------------------------------------- answer vectors */

static const json_value *replayed;

/* Answers message i with outcome i of the vector, after sending an output that a failure
 * must discard. */
static runnel_status replay(const runnel_message *m, runnel_outputs *out) {
    (void)m;
    const json_value *o = &replayed->items[seen++], *failure = field(o, "failure");
    if (failure) {
        runnel_send(out, runnel_cbytes("discarded"));
        runnel_output_topic(out, runnel_cstr("discarded-topic"));
        const char *message = field(failure, "message")->string;
        if (strcmp(field(failure, "kind")->string, "transient") == 0) return runnel_transient(out, "%s", message);
        return runnel_permanent(out, "%s", message);
    }
    const json_value *outputs = field(o, "outputs");
    for (size_t j = 0; j < outputs->count; j++) {
        const json_value *r = &outputs->items[j], *topic = field(r, "topic"), *key = field(r, "key");
        const json_value *value = field(r, "value"), *headers = field(r, "headers");
        runnel_send(out, (runnel_bytes){(const uint8_t *)value->string, value->string_len});
        if (key->type != JSON_NULL) runnel_output_key(out, (runnel_bytes){(const uint8_t *)key->string, key->string_len});
        for (size_t h = 0; h < headers->count; h++)
            runnel_output_header(out, runnel_cstr(headers->items[h].items[0].string),
                                 runnel_cbytes(headers->items[h].items[1].string));
        if (topic->type != JSON_NULL) runnel_output_topic(out, runnel_cstr(topic->string));
    }
    return RUNNEL_OK;
}

static void test_answer_vectors(const json_value *vectors) {
    const json_value *answers = field(vectors, "answers");
    static char got[4096], want[4096];
    for (size_t i = 0; i < answers->count; i++) {
        const json_value *vector = &answers->items[i], *hex = field(vector, "hex");
        const char *name = field(vector, "name")->string;
        replayed = field(vector, "outcomes");
        describe_outcomes(replayed, want, sizeof want);

        size_t len;
        uint8_t *answer = unhex(hex->string, hex->string_len, &len);
        const char *error = read_answer(answer, len, replayed->count, got, sizeof got);
        CHECK(!error, "%s: the vector's answer reads: %s", name, error);
        CHECK(strcmp(got, want) == 0, "%s: the vector's answer reads as\n%s\nwant\n%s", name, got, want);
        free(answer);

        size_t batch_len, answer_len;
        uint8_t *batch = plain_batch(replayed->count, &batch_len);
        seen = 0;
        current_handler = replay;
        answer = runnel_run_handle(batch, batch_len, &answer_len);
        error = read_answer(answer, answer_len, replayed->count, got, sizeof got);
        CHECK(!error, "%s: the written answer reads: %s", name, error);
        CHECK(strcmp(got, want) == 0, "%s: the written answer reads as\n%s\nwant\n%s", name, got, want);
        CHECK(!memmem(answer, answer_len, "discarded", 9), "%s: failed outputs are gone", name);
        free(answer);
        free(batch);
    }
}

/* ---------------------------------------------------------------- malformed batches */

static runnel_status echo(const runnel_message *m, runnel_outputs *out) {
    runnel_send(out, runnel_message_value(m));
    runnel_output_key(out, runnel_message_key(m));
    runnel_output_headers(out, m);
    return RUNNEL_OK;
}

static void expect_malformed(const char *name, const uint8_t *batch, size_t len, const char *reason) {
    size_t answer_len;
    static char got[1 << 18];
    current_handler = echo;
    uint8_t *answer = runnel_run_handle(batch, len, &answer_len);
    size_t claimed = len >= 8 ? u32(batch + 4) : 0;
    if (claimed > len) claimed = len;
    const char *error = read_answer(answer, answer_len, claimed, got, sizeof got);
    CHECK(!error, "%s: the answer to a malformed batch is well-formed: %s", name, error);
    CHECK(claimed == 0 || (strstr(got, "permanent: the plugin received a malformed batch") && strstr(got, reason)),
          "%s: got\n%s\nwant a permanent failure naming \"%s\"", name, got, reason);
    free(answer);
}

static void test_malformed_batches(const json_value *vectors) {
    const json_value *hex = field(&field(vectors, "batches")->items[0], "hex");
    size_t len;
    uint8_t *good = unhex(hex->string, hex->string_len, &len);
    uint8_t *b = malloc(len);
    uint32_t messages_at = u32(good + 20), headers_at = u32(good + 24), topics_at = u32(good + 16);
    uint32_t data_at = u32(good + 28);
    struct {
        const char *name;
        size_t at;
        uint32_t value;
        const char *reason;
    } patches[] = {
        {"bad magic", 0, 0, "does not start with \"RNB1\""},
        {"topics table outside the buffer", 16, 0xFFFFFFFF, "the topics table"},
        {"message table outside the buffer", 4, 1000, "the messages table"},
        {"header table outside the buffer", 12, 1000, "the headers table"},
        {"data area past the end", 28, 0xFFFFFFFF, "data_at"},
        {"source outside the data area", 36, 1000, "the source"},
        {"value outside the data area", messages_at + 48 + 36, 1u << 30, "the value of message 1"},
        {"key outside the data area", messages_at + 24, 1u << 30, "the key of message 0"},
        {"no-key marker with a length", messages_at + 48 + 28, 3, "marks no key but has a length"},
        {"unknown topic", messages_at + 20, 5, "names topic 5 of 2"},
        {"headers outside the header table", messages_at + 44, 9, "has headers 0..9"},
        {"header value outside the data area", headers_at + 12, 1000, "the value of header 0"},
        {"topic name outside the data area", topics_at + 12, 1000, "topic 1"},
    };
    for (size_t i = 0; i < sizeof patches / sizeof *patches; i++) {
        memcpy(b, good, len);
        put32(b + patches[i].at, patches[i].value);
        expect_malformed(patches[i].name, b, len, patches[i].reason);
    }
    expect_malformed("truncated header", good, 39, "shorter than its 40-byte header");
    expect_malformed("truncated tables", good, len - 1, "runs past the end");
    struct {
        const char *name;
        uint32_t span_at;
        const char *reason;
    } texts[] = {{"bad UTF-8 in the source", 32, "the source 0 is not UTF-8"},
                 {"bad UTF-8 in a topic name", topics_at, "topic 0 is not UTF-8"},
                 {"bad UTF-8 in a header name", headers_at, "the name of header 0 is not UTF-8"}};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        memcpy(b, good, len);
        b[data_at + u32(b + texts[i].span_at)] = 0xFF;
        expect_malformed(texts[i].name, b, len, texts[i].reason);
    }
    free(b);
    free(good);
}

/* ---------------------------------------------------------------- behaviour */

static runnel_status fail_some(const runnel_message *m, runnel_outputs *out) {
    runnel_bytes value = runnel_message_value(m);
    runnel_send(out, value);
    runnel_output_topic(out, runnel_cstr(value.len == 2 ? "kept" : "only-failed"));
    if (same(value.ptr, value.len, "transient", 9)) return runnel_transient(out, "try %s", "later");
    if (same(value.ptr, value.len, "permanent", 9)) return runnel_permanent(out, "never");
    if (same(value.ptr, value.len, "silent", 6)) return RUNNEL_FAILED;
    return RUNNEL_OK;
}

static void test_behaviour(void) {
    static char got[4096];
    size_t answer_len;
    const char *want = "ok [topic=kept key=- value=ok]\ntransient: try later\npermanent: never\n"
                       "permanent: runnel_handle returned RUNNEL_FAILED without runnel_permanent or "
                       "runnel_transient saying why\n";
    /* The vectors' first batch, with its values replaced is more than this test needs: build
     * the answer from four messages whose values pick the outcome. */
    const char *values[] = {"ok", "transient", "permanent", "silent"};
    size_t len;
    uint8_t *batch = plain_batch(4, &len);
    size_t total = len;
    for (int i = 0; i < 4; i++) total += strlen(values[i]);
    batch = realloc(batch, total);
    size_t at = len;
    for (int i = 0; i < 4; i++) {
        memcpy(batch + at, values[i], strlen(values[i]));
        put32(batch + 52 + i * 48 + 32, (uint32_t)(at - 40));
        put32(batch + 52 + i * 48 + 36, (uint32_t)strlen(values[i]));
        at += strlen(values[i]);
    }
    current_handler = fail_some;
    uint8_t *answer = runnel_run_handle(batch, total, &answer_len);
    const char *error = read_answer(answer, answer_len, 4, got, sizeof got);
    CHECK(!error && strcmp(got, want) == 0, "failures: %s\n%s", error ? error : "", got);
    CHECK(!memmem(answer, answer_len, "only-failed", 11), "a topic only failed outputs used is gone");
    free(answer);

    runnel_str settings[] = {runnel_cstr("other"), runnel_cstr("x")};
    const char *init_error = runnel_run_init(settings, 1);
    CHECK(init_error && strcmp(init_error, "missing required setting `mode`: add it to this plugin's config") == 0,
          "init error: %s", init_error);
    answer = runnel_run_handle(batch, total, &answer_len);
    read_answer(answer, answer_len, 4, got, sizeof got);
    CHECK(strstr(got, "permanent: the plugin was not initialized"), "handle before init: %s", got);
    free(answer);
    free(batch);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/wit/encoding-vectors.json\n", argv[0]);
        return 2;
    }
    FILE *file = fopen(argv[1], "rb");
    if (!file) return perror(argv[1]), 2;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text, file);
    fclose(file);
    json_arena *arena = NULL;
    json_value vectors;
    char error[200];
    if (!json_parse(text, len, &arena, &vectors, error, sizeof error)) {
        fprintf(stderr, "%s: %s\n", argv[1], error);
        return 2;
    }
    test_batch_vectors(&vectors);
    test_answer_vectors(&vectors);
    test_malformed_batches(&vectors);
    test_behaviour();
    json_free(arena);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok: the C SDK reads and writes every vector and rejects malformed batches\n");
    return 0;
}
