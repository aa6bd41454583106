/* The json-router's routes, drop rules and errors, as the Rust example's tests check them:
 * `sdk/c/build.sh --test sdk/c/examples/json-router`. */
#include <stdio.h>
#include <string.h>

#include "runnel_testing.h"

void runnel_host_log(int level, const char *message, size_t len) {
    fprintf(stderr, "log %d: %.*s\n", level, (int)len, message);
}

static int failures;

/* Routes record and describes the outcome: Topic(t), DefaultTopic, Drop or the failure. */
static void expect(const char *record, const char *want) {
    runnel_test_message message = {.topic = "in", .key = runnel_cbytes("k"), .value = runnel_cbytes(record)};
    runnel_test_outcome outcome = runnel_test_handle(&message);
    char got[400];
    if (outcome.failure)
        snprintf(got, sizeof got, "error: %.*s", (int)outcome.failure_message.len, outcome.failure_message.ptr);
    else if (outcome.output_count == 0)
        snprintf(got, sizeof got, "Drop");
    else if (outcome.outputs[0].topic.len == 0)
        snprintf(got, sizeof got, "DefaultTopic");
    else
        snprintf(got, sizeof got, "Topic(%.*s)", (int)outcome.outputs[0].topic.len, outcome.outputs[0].topic.ptr);
    if (outcome.output_count == 1 &&
        (outcome.outputs[0].value.len != strlen(record) || memcmp(outcome.outputs[0].value.ptr, record, strlen(record)) != 0 ||
         outcome.outputs[0].key.len != 1))
        snprintf(got, sizeof got, "the value or key changed");
    if (strncmp(got, want, strlen(want)) != 0) {
        fprintf(stderr, "FAIL: %s: got %s, want %s\n", record, got, want);
        failures++;
    }
    runnel_test_free(&outcome);
}

static const char *init(const char *route_field, const char *drop_field, const char *drop_value) {
    runnel_str settings[6];
    size_t n = 0;
    if (route_field) settings[2 * n] = runnel_cstr("route_field"), settings[2 * n + 1] = runnel_cstr(route_field), n++;
    if (drop_field) settings[2 * n] = runnel_cstr("drop_field"), settings[2 * n + 1] = runnel_cstr(drop_field), n++;
    if (drop_value) settings[2 * n] = runnel_cstr("drop_value"), settings[2 * n + 1] = runnel_cstr(drop_value), n++;
    return runnel_run_init(settings, n);
}

static void expect_init_error(const char *error, const char *want) {
    if (!error || !strstr(error, want)) {
        fprintf(stderr, "FAIL: init error %s, want one containing %s\n", error ? error : "(none)", want);
        failures++;
    }
}

int main(void) {
    expect_init_error(init(NULL, NULL, NULL), "`route_field`");
    expect_init_error(init("type", "test", NULL), "set both or neither");

    init("type", NULL, NULL);
    expect("{\"type\":\"orders\"}", "Topic(orders)");
    expect(" { \"type\" : \"orders\", \"n\": 1.50 } ", "Topic(orders)");
    expect("{\"other\":1}", "DefaultTopic");
    expect("{\"type\":3}", "error: field `type` must be a non-empty string naming the target topic, found 3");
    expect("{\"type\":\"\"}", "error: field `type` must be a non-empty string naming the target topic, found \"\"");
    expect("{\"type\": {\"a\": [1, true]}}", "error: field `type` must be a non-empty string naming the target topic, found {\"a\":[1,true]}");
    expect("[1]", "error: value is a JSON array, expected an object");
    expect("\"text\"", "error: value is a JSON string, expected an object");
    expect("{\"type\":", "error: value is not valid JSON: EOF while parsing a value at line 1 column 8");
    expect("not json", "error: value is not valid JSON: expected ident at line 1 column 2");
    expect("{} x", "error: value is not valid JSON: trailing characters at line 1 column 4");

    struct { const char *drop_value, *record, *want; } drops[] = {
        {"yes", "{\"test\":\"yes\"}", "Drop"},
        {"yes", "{\"test\":\"no\"}", "DefaultTopic"},
        {"\"yes\"", "{\"test\":\"yes\"}", "Drop"},
        {"true", "{\"test\":true}", "Drop"},
        {"42", "{\"test\":42,\"type\":\"t\"}", "Drop"},
        {"42", "{\"test\":42.0}", "DefaultTopic"},
        {"null", "{\"test\":null}", "Drop"},
        {"null", "{}", "DefaultTopic"},
        {"{\"a\": [1]}", "{\"test\":{\"a\":[1]}}", "Drop"},
        {"{\"a\": 1, \"b\": 2}", "{\"test\":{\"b\":2,\"a\":1}}", "Drop"},
    };
    for (size_t i = 0; i < sizeof drops / sizeof *drops; i++) {
        init("type", "test", drops[i].drop_value);
        expect(drops[i].record, drops[i].want);
    }
    if (!failures) printf("ok: json-router\n");
    return failures != 0;
}
