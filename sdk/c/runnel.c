/* The Runnel C SDK: reads batches and writes answers in the encoding of wit/ENCODING.md, and
 * runs the plugin's runnel_init and runnel_handle. Nothing here depends on WebAssembly, so the
 * native tests run exactly this code; runnel_component.c connects it to the component's
 * exports and imports. */
#include "runnel.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Sizes and markers of the encoding, version 1. */
enum {
    HEADER_LEN = 40, /* both directions start with a 40-byte header */
    SPAN_LEN = 8,
    MESSAGE_LEN = 48,
    HEADER_RECORD_LEN = 16,
    OUTCOME_LEN = 16,
    OUTPUT_LEN = 32,
};
#define NO_KEY 0xFFFFFFFFu

/* ---------------------------------------------------------------- small helpers */

/* The encoding aligns nothing: every integer is read from its byte position. */
static uint32_t read_u32(const uint8_t *at) {
    uint32_t value;
    memcpy(&value, at, 4); /* WebAssembly, like x86, is little-endian */
    return value;
}

static uint64_t read_u64(const uint8_t *at) {
    uint64_t value;
    memcpy(&value, at, 8);
    return value;
}

static void write_u32(uint8_t *at, uint32_t value) { memcpy(at, &value, 4); }

typedef struct {
    uint32_t offset, length;
} span;

static span read_span(const uint8_t *at) { return (span){read_u32(at), read_u32(at + 4)}; }

static void write_span(uint8_t *at, span s) {
    write_u32(at, s.offset);
    write_u32(at + 4, s.length);
}

/* Grows an array to hold at least `needed` items of `size` bytes; allocation failure traps, as
 * running out of memory does in any WebAssembly guest. */
static void *grow(void *items, size_t *capacity, size_t needed, size_t size) {
    if (needed <= *capacity) return items;
    size_t grown = *capacity ? *capacity * 2 : 16;
    while (grown < needed) grown *= 2;
    items = realloc(items, grown * size);
    if (!items) abort();
    *capacity = grown;
    return items;
}

static bool is_utf8(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        /* Most text is ASCII: skip it eight bytes at a time. */
        if (i + 8 <= len && (read_u64(s + i) & 0x8080808080808080ull) == 0) {
            i += 8;
            continue;
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t extra;
        uint32_t min;
        uint32_t code;
        if ((c & 0xE0) == 0xC0) extra = 1, min = 0x80, code = c & 0x1F;
        else if ((c & 0xF0) == 0xE0) extra = 2, min = 0x800, code = c & 0x0F;
        else if ((c & 0xF8) == 0xF0) extra = 3, min = 0x10000, code = c & 0x07;
        else return false;
        if (len - i <= extra) return false;
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            code = (code << 6) | (s[i + k] & 0x3F);
        }
        if (code < min || code > 0x10FFFF || (code >= 0xD800 && code <= 0xDFFF)) return false;
        i += extra + 1;
    }
    return true;
}

runnel_str runnel_cstr(const char *text) { return (runnel_str){text, strlen(text)}; }

runnel_bytes runnel_cbytes(const char *text) {
    return (runnel_bytes){(const uint8_t *)text, strlen(text)};
}

/* printf into a malloc'd, NUL-terminated string whose length goes to *len. */
static char *format_text(const char *format, va_list args, size_t *len) {
    va_list again;
    va_copy(again, args);
    int n = vsnprintf(NULL, 0, format, args);
    if (n < 0) n = 0;
    char *text = malloc((size_t)n + 1);
    if (!text) abort();
    vsnprintf(text, (size_t)n + 1, format, again);
    va_end(again);
    *len = (size_t)n;
    return text;
}

/* ---------------------------------------------------------------- configuration and init */

struct runnel_config {
    const runnel_str *settings; /* name, value, name, value, ... */
    size_t count;
};

static char *init_error;

bool runnel_init_error(const char *format, ...) {
    va_list args;
    va_start(args, format);
    size_t len;
    free(init_error);
    init_error = format_text(format, args, &len);
    va_end(args);
    return false;
}

bool runnel_config_get(const runnel_config *config, const char *name, runnel_str *value) {
    size_t name_len = strlen(name);
    for (size_t i = config->count; i-- > 0;) {
        runnel_str key = config->settings[2 * i];
        if (key.len == name_len && memcmp(key.ptr, name, name_len) == 0) {
            *value = config->settings[2 * i + 1];
            return true;
        }
    }
    return false;
}

bool runnel_config_require(const runnel_config *config, const char *name, runnel_str *value) {
    if (runnel_config_get(config, name, value)) return true;
    return runnel_init_error("missing required setting `%s`: add it to this plugin's config", name);
}

size_t runnel_config_count(const runnel_config *config) { return config->count; }

void runnel_config_at(const runnel_config *config, size_t index, runnel_str *name,
                      runnel_str *value) {
    *name = config->settings[2 * index];
    *value = config->settings[2 * index + 1];
}

/* Whether init has succeeded: a failed init leaves no handler behind, so batches fail with a
 * clear message instead of running on an older configuration. */
static bool initialized;

const char *runnel_run_init(const runnel_str *settings, size_t count) {
    runnel_config config = {settings, count};
    free(init_error);
    init_error = NULL;
    initialized = runnel_init(&config);
    if (initialized) return NULL;
    if (!init_error) runnel_init_error("runnel_init returned false without saying why");
    return init_error;
}

/* ---------------------------------------------------------------- reading a batch */

/* A batch whose every table, span and string was checked once, so that messages are read from
 * it without checking again. */
typedef struct {
    const uint8_t *bytes;
    const uint8_t *data;
    size_t data_len;
    runnel_str source;
    const uint8_t *topics;
    uint32_t topic_count;
    const uint8_t *messages;
    uint32_t count;
    const uint8_t *headers;
    uint32_t header_count;
} batch_view;

struct runnel_message {
    const batch_view *batch;
    const uint8_t *record; /* the message's 48-byte record */
};

/* Why the batch being parsed is malformed. */
static char decode_error[200];

static bool malformed(const char *format, ...) __attribute__((format(printf, 1, 2)));
static bool malformed(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(decode_error, sizeof decode_error, format, args);
    va_end(args);
    return false;
}

static bool check_table(size_t buffer_len, uint32_t at, uint32_t count, size_t size,
                        const char *name) {
    if ((uint64_t)at + (uint64_t)count * size > buffer_len)
        return malformed("the %s table (%u records at byte %u) runs past the end of the %zu-byte "
                         "buffer",
                         name, count, at, buffer_len);
    return true;
}

/* Checks that s lies inside the data area; what and index name it in an error. */
static bool check_span(const batch_view *b, span s, const char *what, uint32_t index) {
    if ((uint64_t)s.offset + s.length > b->data_len)
        return malformed("%s %u (%u bytes at %u) runs past the %zu-byte data area", what, index,
                         s.length, s.offset, b->data_len);
    return true;
}

static bool check_text(const batch_view *b, span s, const char *what, uint32_t index) {
    if (!check_span(b, s, what, index)) return false;
    if (!is_utf8(b->data + s.offset, s.length)) return malformed("%s %u is not UTF-8", what, index);
    return true;
}

static bool parse_batch(const uint8_t *bytes, size_t len, batch_view *b) {
    if (len < HEADER_LEN)
        return malformed("the batch is %zu bytes, shorter than its 40-byte header", len);
    if (memcmp(bytes, "RNB1", 4) != 0)
        return malformed("the batch does not start with \"RNB1\": it is not encoding version 1");
    b->bytes = bytes;
    b->count = read_u32(bytes + 4);
    b->topic_count = read_u32(bytes + 8);
    b->header_count = read_u32(bytes + 12);
    uint32_t topics_at = read_u32(bytes + 16), messages_at = read_u32(bytes + 20);
    uint32_t headers_at = read_u32(bytes + 24), data_at = read_u32(bytes + 28);
    if (!check_table(len, topics_at, b->topic_count, SPAN_LEN, "topics") ||
        !check_table(len, messages_at, b->count, MESSAGE_LEN, "messages") ||
        !check_table(len, headers_at, b->header_count, HEADER_RECORD_LEN, "headers"))
        return false;
    if (data_at > len) return malformed("data_at %u is past the end", data_at);
    b->topics = bytes + topics_at;
    b->messages = bytes + messages_at;
    b->headers = bytes + headers_at;
    b->data = bytes + data_at;
    b->data_len = len - data_at;

    span source = read_span(bytes + 32);
    if (!check_text(b, source, "the source", 0)) return false;
    b->source = (runnel_str){(const char *)b->data + source.offset, source.length};
    for (uint32_t i = 0; i < b->topic_count; i++)
        if (!check_text(b, read_span(b->topics + i * SPAN_LEN), "topic", i)) return false;
    for (uint32_t i = 0; i < b->header_count; i++) {
        const uint8_t *record = b->headers + i * HEADER_RECORD_LEN;
        if (!check_text(b, read_span(record), "the name of header", i) ||
            !check_span(b, read_span(record + 8), "the value of header", i))
            return false;
    }
    for (uint32_t i = 0; i < b->count; i++) {
        const uint8_t *record = b->messages + i * MESSAGE_LEN;
        uint32_t topic = read_u32(record + 20);
        if (topic >= b->topic_count)
            return malformed("message %u names topic %u of %u", i, topic, b->topic_count);
        span key = read_span(record + 24);
        if (key.offset == NO_KEY) {
            if (key.length != 0)
                return malformed("the key of message %u marks no key but has a length", i);
        } else if (!check_span(b, key, "the key of message", i)) {
            return false;
        }
        if (!check_span(b, read_span(record + 32), "the value of message", i)) return false;
        uint64_t first = read_u32(record + 40), count = read_u32(record + 44);
        if (first + count > b->header_count)
            return malformed("message %u has headers %llu..%llu but the header table has %u", i,
                             (unsigned long long)first, (unsigned long long)(first + count),
                             b->header_count);
    }
    return true;
}

/* The bytes of a span that parse_batch checked. */
static runnel_bytes bytes_at(const batch_view *b, span s) {
    return (runnel_bytes){b->data + s.offset, s.length};
}

runnel_bytes runnel_message_key(const runnel_message *m) {
    span key = read_span(m->record + 24);
    if (key.offset == NO_KEY) return RUNNEL_NO_KEY;
    return bytes_at(m->batch, key);
}

runnel_bytes runnel_message_value(const runnel_message *m) {
    return bytes_at(m->batch, read_span(m->record + 32));
}

runnel_str runnel_message_topic(const runnel_message *m) {
    uint32_t topic = read_u32(m->record + 20);
    runnel_bytes name = bytes_at(m->batch, read_span(m->batch->topics + topic * SPAN_LEN));
    return (runnel_str){(const char *)name.ptr, name.len};
}

int32_t runnel_message_partition(const runnel_message *m) {
    return (int32_t)read_u32(m->record + 16);
}

int64_t runnel_message_offset(const runnel_message *m) { return (int64_t)read_u64(m->record); }

bool runnel_message_timestamp(const runnel_message *m, int64_t *millis) {
    *millis = (int64_t)read_u64(m->record + 8);
    return *millis != -1;
}

runnel_str runnel_message_source(const runnel_message *m) { return m->batch->source; }

size_t runnel_message_header_count(const runnel_message *m) { return read_u32(m->record + 44); }

runnel_header runnel_message_header_at(const runnel_message *m, size_t index) {
    if (index >= runnel_message_header_count(m)) abort();
    const uint8_t *record =
        m->batch->headers + (read_u32(m->record + 40) + index) * HEADER_RECORD_LEN;
    runnel_bytes name = bytes_at(m->batch, read_span(record));
    return (runnel_header){{(const char *)name.ptr, name.len},
                           bytes_at(m->batch, read_span(record + 8))};
}

bool runnel_message_header(const runnel_message *m, const char *name, runnel_bytes *value) {
    size_t name_len = strlen(name);
    for (size_t i = runnel_message_header_count(m); i-- > 0;) {
        runnel_header header = runnel_message_header_at(m, i);
        if (header.name.len == name_len && memcmp(header.name.ptr, name, name_len) == 0) {
            *value = header.value;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- writing the answer */

typedef struct {
    uint32_t outputs_end, kind;
    span message;
} outcome_record;

typedef struct {
    uint32_t topic; /* 0 for the default topic, k + 1 for topics[k] */
    span key, value;
    uint32_t first_header, header_count;
} output_record;

typedef struct {
    span name, value;
} header_record;

/* The answer is written straight into its encoded form: the 40-byte header, then the data area
 * as outputs are sent, then the tables when the batch is done. The tables' memory is kept for
 * the next batch. */
struct runnel_outputs {
    uint8_t *answer;
    size_t len, capacity;
    span *topics; /* names in the data area */
    size_t topic_count, topic_capacity;
    outcome_record *outcomes;
    size_t outcome_count, outcome_capacity;
    output_record *outputs;
    size_t output_count, output_capacity;
    header_record *headers;
    size_t header_count, header_capacity;
    /* Where the current message began, to roll its outputs back if it fails. */
    size_t mark_len, mark_topics, mark_outputs, mark_headers;
    /* The failure runnel_permanent or runnel_transient recorded for the current message. */
    uint32_t failure_kind;
    char *failure_text;
    size_t failure_len;
};

static runnel_outputs outputs;

static void start_message(runnel_outputs *o) {
    o->mark_len = o->len;
    o->mark_topics = o->topic_count;
    o->mark_outputs = o->output_count;
    o->mark_headers = o->header_count;
    o->failure_kind = 0;
}

/* Starts the answer to a batch, sized for one output per message about as large as its
 * input. */
static void begin(runnel_outputs *o, size_t count, size_t data_bytes) {
    o->capacity = HEADER_LEN + data_bytes + count * (OUTCOME_LEN + OUTPUT_LEN);
    o->answer = malloc(o->capacity);
    if (!o->answer) abort();
    o->len = HEADER_LEN;
    o->topic_count = o->outcome_count = o->output_count = o->header_count = 0;
    start_message(o);
}

/* Appends bytes to the data area. */
static span push(runnel_outputs *o, const void *bytes, size_t len) {
    o->answer = grow(o->answer, &o->capacity, o->len + len, 1);
    span s = {(uint32_t)(o->len - HEADER_LEN), (uint32_t)len};
    if (len) memcpy(o->answer + o->len, bytes, len);
    o->len += len;
    return s;
}

static output_record *last_output(runnel_outputs *o) {
    if (o->output_count == o->mark_outputs) abort(); /* runnel_output_ before runnel_send */
    return &o->outputs[o->output_count - 1];
}

void runnel_send(runnel_outputs *o, runnel_bytes value) {
    o->outputs = grow(o->outputs, &o->output_capacity, o->output_count + 1, sizeof *o->outputs);
    o->outputs[o->output_count++] = (output_record){
        .key = {NO_KEY, 0},
        .value = push(o, value.ptr, value.len),
        .first_header = (uint32_t)o->header_count,
    };
}

void runnel_output_key(runnel_outputs *o, runnel_bytes key) {
    output_record *output = last_output(o);
    output->key = key.ptr ? push(o, key.ptr, key.len) : (span){NO_KEY, 0};
}

runnel_mut_bytes runnel_output_value(runnel_outputs *o) {
    span value = last_output(o)->value;
    return (runnel_mut_bytes){o->answer + HEADER_LEN + value.offset, value.length};
}

void runnel_output_header(runnel_outputs *o, runnel_str name, runnel_bytes value) {
    last_output(o)->header_count++;
    o->headers = grow(o->headers, &o->header_capacity, o->header_count + 1, sizeof *o->headers);
    span name_span = push(o, name.ptr, name.len);
    o->headers[o->header_count++] = (header_record){name_span, push(o, value.ptr, value.len)};
}

void runnel_output_headers(runnel_outputs *o, const runnel_message *m) {
    size_t count = runnel_message_header_count(m);
    for (size_t i = 0; i < count; i++) {
        runnel_header header = runnel_message_header_at(m, i);
        runnel_output_header(o, header.name, header.value);
    }
}

void runnel_output_topic(runnel_outputs *o, runnel_str topic) {
    output_record *output = last_output(o);
    for (size_t k = 0; k < o->topic_count; k++) {
        span known = o->topics[k];
        if (known.length == topic.len &&
            memcmp(o->answer + HEADER_LEN + known.offset, topic.ptr, topic.len) == 0) {
            output->topic = (uint32_t)k + 1;
            return;
        }
    }
    o->topics = grow(o->topics, &o->topic_capacity, o->topic_count + 1, sizeof *o->topics);
    o->topics[o->topic_count++] = push(o, topic.ptr, topic.len);
    output->topic = (uint32_t)o->topic_count;
}

static runnel_status fail(runnel_outputs *o, uint32_t kind, const char *format, va_list args) {
    free(o->failure_text);
    o->failure_text = format_text(format, args, &o->failure_len);
    o->failure_kind = kind;
    return RUNNEL_FAILED;
}

runnel_status runnel_transient(runnel_outputs *o, const char *format, ...) {
    va_list args;
    va_start(args, format);
    runnel_status status = fail(o, 1, format, args);
    va_end(args);
    return status;
}

runnel_status runnel_permanent(runnel_outputs *o, const char *format, ...) {
    va_list args;
    va_start(args, format);
    runnel_status status = fail(o, 2, format, args);
    va_end(args);
    return status;
}

/* Records the outcome of the message whose outputs were sent since the previous call: keeps
 * its outputs, or rolls them back and records the failure. */
static void finish_message(runnel_outputs *o, runnel_status status) {
    outcome_record outcome = {0, 0, {0, 0}};
    if (status != RUNNEL_OK || o->failure_kind != 0) {
        if (o->failure_kind == 0)
            runnel_permanent(o, "runnel_handle returned RUNNEL_FAILED without runnel_permanent or "
                                "runnel_transient saying why");
        o->len = o->mark_len;
        o->topic_count = o->mark_topics;
        o->output_count = o->mark_outputs;
        o->header_count = o->mark_headers;
        outcome.kind = o->failure_kind;
        outcome.message = push(o, o->failure_text, o->failure_len);
    }
    outcome.outputs_end = (uint32_t)o->output_count;
    o->outcomes = grow(o->outcomes, &o->outcome_capacity, o->outcome_count + 1, sizeof *o->outcomes);
    o->outcomes[o->outcome_count++] = outcome;
    start_message(o);
}

/* Appends the tables, writes the header and hands the buffer over. */
static uint8_t *finish(runnel_outputs *o, size_t *answer_len) {
    size_t topics_at = o->len;
    size_t outcomes_at = topics_at + o->topic_count * SPAN_LEN;
    size_t outputs_at = outcomes_at + o->outcome_count * OUTCOME_LEN;
    size_t headers_at = outputs_at + o->output_count * OUTPUT_LEN;
    size_t end = headers_at + o->header_count * HEADER_RECORD_LEN;
    uint8_t *a = o->answer = grow(o->answer, &o->capacity, end, 1);
    for (size_t k = 0; k < o->topic_count; k++) write_span(a + topics_at + k * SPAN_LEN, o->topics[k]);
    for (size_t i = 0; i < o->outcome_count; i++) {
        uint8_t *at = a + outcomes_at + i * OUTCOME_LEN;
        write_u32(at, o->outcomes[i].outputs_end);
        write_u32(at + 4, o->outcomes[i].kind);
        write_span(at + 8, o->outcomes[i].message);
    }
    for (size_t i = 0; i < o->output_count; i++) {
        const output_record *output = &o->outputs[i];
        uint8_t *at = a + outputs_at + i * OUTPUT_LEN;
        write_u32(at, output->topic);
        write_span(at + 4, output->key);
        write_span(at + 12, output->value);
        write_u32(at + 20, output->first_header);
        write_u32(at + 24, output->header_count);
        write_u32(at + 28, 0);
    }
    for (size_t i = 0; i < o->header_count; i++) {
        uint8_t *at = a + headers_at + i * HEADER_RECORD_LEN;
        write_span(at, o->headers[i].name);
        write_span(at + 8, o->headers[i].value);
    }
    memcpy(a, "RNO1", 4);
    size_t fields[] = {o->outcome_count, o->topic_count, o->output_count, o->header_count,
                       topics_at,        outcomes_at,    outputs_at,      headers_at,
                       HEADER_LEN};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) write_u32(a + 4 + 4 * i, (uint32_t)fields[i]);
    *answer_len = end;
    o->answer = NULL;
    o->capacity = 0;
    return a;
}

/* ---------------------------------------------------------------- handling a batch */

static uint8_t *fail_every_message(size_t count, const char *message, size_t *answer_len) {
    begin(&outputs, count, 0);
    for (size_t i = 0; i < count; i++) {
        runnel_permanent(&outputs, "%s", message);
        finish_message(&outputs, RUNNEL_FAILED);
    }
    return finish(&outputs, answer_len);
}

uint8_t *runnel_run_handle(const uint8_t *batch, size_t len, size_t *answer_len) {
    batch_view view;
    if (!parse_batch(batch, len, &view)) {
        /* Even a malformed batch gets one failure per message its header claims (0 if not even
         * that can be read, and never more than its length, so that a corrupt count cannot
         * make the plugin allocate without bound). Retrying the same batch against the same
         * host cannot help, hence permanent. */
        size_t claimed = len >= 8 ? read_u32(batch + 4) : 0;
        if (claimed > len) claimed = len;
        char message[400];
        snprintf(message, sizeof message,
                 "the plugin received a malformed batch (%s); this is a bug in the Runnel host or "
                 "the Runnel C SDK",
                 decode_error);
        return fail_every_message(claimed, message, answer_len);
    }
    if (!initialized)
        return fail_every_message(view.count,
                                  "the plugin was not initialized: the host called handle before "
                                  "init succeeded",
                                  answer_len);
    begin(&outputs, view.count, len);
    for (uint32_t i = 0; i < view.count; i++) {
        runnel_message message = {&view, view.messages + (size_t)i * MESSAGE_LEN};
        finish_message(&outputs, runnel_handle(&message, &outputs));
    }
    return finish(&outputs, answer_len);
}

/* ---------------------------------------------------------------- logging */

static void log_at(int level, const char *format, va_list args) {
    size_t len;
    char *text = format_text(format, args, &len);
    runnel_host_log(level, text, len);
    free(text);
}

#define LOG_FUNCTION(name, level)                                                               \
    void name(const char *format, ...) {                                                       \
        va_list args;                                                                          \
        va_start(args, format);                                                                \
        log_at(level, format, args);                                                           \
        va_end(args);                                                                          \
    }

/* The levels of the WIT enum runnel:plugin/log.level, in its order. */
LOG_FUNCTION(runnel_trace, 0)
LOG_FUNCTION(runnel_debug, 1)
LOG_FUNCTION(runnel_info, 2)
LOG_FUNCTION(runnel_warn, 3)
LOG_FUNCTION(runnel_error, 4)
