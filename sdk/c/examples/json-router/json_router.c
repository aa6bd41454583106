/* Routes JSON records to the topic named by one of their top-level fields.
 *
 * Settings:
 * - `route_field` (required): a top-level string field naming the target topic; records
 *   without it go to the pipeline's default output topic.
 * - `drop_field` and `drop_value` (optional, together): records whose `drop_field` equals
 *   `drop_value` are dropped. A string field matches its content (`drop_value = "test"` matches
 *   `"test"`); any field also matches its JSON text (`true`, `42`, `null`, `"test"`,
 *   `{"a": 1}`), compared as JSON so spacing does not matter.
 *
 * The value is sent unchanged, with its key and headers. A value that is not a JSON object
 * fails permanently. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "runnel.h"

static char *route_field;
static size_t route_field_len;

/* The drop rule, when both settings are set. */
static bool drop;
static char *drop_field, *drop_text; /* drop_value as written, matched against string fields */
static size_t drop_field_len, drop_text_len;
/* drop_value parsed as JSON when it is JSON, matched against any field; parsed once here. */
static json_arena *drop_arena;
static json_value drop_json;
static bool drop_is_json;

static char *copy(runnel_str text, size_t *len) {
    char *c = malloc(text.len + 1);
    if (!c) abort();
    memcpy(c, text.ptr, text.len);
    c[text.len] = '\0';
    *len = text.len;
    return c;
}

bool runnel_init(const runnel_config *config) {
    runnel_str route, field, value;
    if (!runnel_config_require(config, "route_field", &route)) return false;
    bool has_field = runnel_config_get(config, "drop_field", &field);
    bool has_value = runnel_config_get(config, "drop_value", &value);
    if (has_field != has_value)
        return runnel_init_error("`drop_field` and `drop_value` work together: set both or neither");
    free(route_field);
    route_field = copy(route, &route_field_len);
    drop = has_field;
    if (drop) {
        free(drop_field);
        free(drop_text);
        json_free(drop_arena);
        drop_arena = NULL;
        drop_field = copy(field, &drop_field_len);
        drop_text = copy(value, &drop_text_len);
        char error[200];
        drop_is_json = json_parse(value.ptr, value.len, &drop_arena, &drop_json, error, sizeof error);
    }
    return true;
}

static bool drop_matches(const json_value *field) {
    if (field->type == JSON_STRING && field->string_len == drop_text_len &&
        memcmp(field->string, drop_text, drop_text_len) == 0)
        return true;
    return drop_is_json && json_equal(&drop_json, field);
}

/* Records are parsed into an arena that is freed after each message. */
static runnel_status route(const runnel_message *message, runnel_outputs *out, const json_value *record) {
    if (record->type != JSON_OBJECT)
        return runnel_permanent(out, "value is a JSON %s, expected an object", json_type_name(record->type));
    if (drop) {
        const json_value *field = json_get(record, drop_field, drop_field_len);
        if (field && drop_matches(field)) return RUNNEL_OK;
    }
    const json_value *topic = json_get(record, route_field, route_field_len);
    if (topic && (topic->type != JSON_STRING || topic->string_len == 0)) {
        char found[256];
        json_write(topic, found, sizeof found);
        return runnel_permanent(out, "field `%s` must be a non-empty string naming the target topic, found %s",
                                route_field, found);
    }
    runnel_send(out, runnel_message_value(message));
    if (topic) runnel_output_topic(out, (runnel_str){topic->string, topic->string_len});
    runnel_output_key(out, runnel_message_key(message));
    runnel_output_headers(out, message);
    return RUNNEL_OK;
}

runnel_status runnel_handle(const runnel_message *message, runnel_outputs *out) {
    runnel_bytes value = runnel_message_value(message);
    json_arena *arena = NULL;
    json_value record;
    char error[200];
    runnel_status status;
    if (json_parse((const char *)value.ptr, value.len, &arena, &record, error, sizeof error))
        status = route(message, out, &record);
    else
        status = runnel_permanent(out, "value is not valid JSON: %s", error);
    json_free(arena);
    return status;
}
