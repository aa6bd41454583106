#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values are allocated from chunks that are freed together. */
struct json_arena {
    json_arena *next;
    size_t used, size;
    _Alignas(16) unsigned char bytes[];
};

typedef struct {
    const char *text;
    size_t len, at;
    json_arena **arena;
    char *error;
    size_t error_size;
    int depth;
} parser;

static void *allocate(parser *p, size_t size) {
    size = (size + 15) & ~(size_t)15;
    json_arena *chunk = *p->arena;
    if (!chunk || chunk->size - chunk->used < size) {
        size_t chunk_size = size > 4096 ? size : 4096;
        chunk = malloc(sizeof *chunk + chunk_size);
        if (!chunk) abort();
        chunk->next = *p->arena;
        chunk->used = 0;
        chunk->size = chunk_size;
        *p->arena = chunk;
    }
    void *memory = chunk->bytes + chunk->used;
    chunk->used += size;
    return memory;
}

void json_free(json_arena *arena) {
    while (arena) {
        json_arena *next = arena->next;
        free(arena);
        arena = next;
    }
}

/* Fails with "WHAT at line L column C", the way serde_json words its errors. */
static bool fail(parser *p, const char *what) {
    size_t line = 1, column = 0;
    for (size_t i = 0; i < p->at && i < p->len; i++) {
        if (p->text[i] == '\n') line++, column = 0;
        else column++;
    }
    if (p->at < p->len) column++;
    snprintf(p->error, p->error_size, "%s at line %zu column %zu", what, line, column);
    return false;
}

static void skip_space(parser *p) {
    while (p->at < p->len && (p->text[p->at] == ' ' || p->text[p->at] == '\t' ||
                              p->text[p->at] == '\n' || p->text[p->at] == '\r'))
        p->at++;
}

static bool parse_value(parser *p, json_value *value);

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool read_hex4(parser *p, unsigned *code) {
    *code = 0;
    for (int i = 0; i < 4; i++) {
        int digit = p->at < p->len ? hex_digit(p->text[p->at]) : -1;
        if (digit < 0) return fail(p, "invalid escape");
        *code = *code * 16 + (unsigned)digit;
        p->at++;
    }
    return true;
}

static size_t put_utf8(char *out, unsigned code) {
    if (code < 0x80) return out[0] = (char)code, 1;
    if (code < 0x800) return out[0] = (char)(0xC0 | code >> 6), out[1] = (char)(0x80 | (code & 0x3F)), 2;
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | code >> 12);
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | code >> 18);
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* Parses a string (p->at is past the opening quote) into an unescaped copy. The copy is never
 * longer than the escaped text, so it is allocated at that length. */
static bool parse_string(parser *p, char **out, size_t *out_len) {
    size_t end = p->at;
    while (end < p->len && p->text[end] != '"') end += p->text[end] == '\\' ? 2 : 1;
    char *copy = allocate(p, (end > p->len ? p->len : end) - p->at + 1);
    size_t n = 0;
    for (;;) {
        if (p->at >= p->len) return fail(p, "EOF while parsing a string");
        unsigned char c = (unsigned char)p->text[p->at++];
        if (c == '"') break;
        if (c < 0x20) return p->at--, fail(p, "control character (\\u0000-\\u001F) found while parsing a string");
        if (c != '\\') {
            copy[n++] = (char)c;
            continue;
        }
        if (p->at >= p->len) return fail(p, "EOF while parsing a string");
        char escape = p->text[p->at++];
        const char *simple = strchr("\"\\/bfnrt", escape);
        if (escape && simple) {
            copy[n++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            continue;
        }
        if (escape != 'u') return fail(p, "invalid escape");
        unsigned code;
        if (!read_hex4(p, &code)) return false;
        if (code >= 0xD800 && code < 0xDC00) {
            unsigned low;
            if (p->at + 2 > p->len || p->text[p->at] != '\\' || p->text[p->at + 1] != 'u')
                return fail(p, "unexpected end of hex escape");
            p->at += 2;
            if (!read_hex4(p, &low)) return false;
            if (low < 0xDC00 || low >= 0xE000) return fail(p, "lone leading surrogate in hex escape");
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
        } else if (code >= 0xDC00 && code < 0xE000) {
            return fail(p, "lone leading surrogate in hex escape");
        }
        n += put_utf8(copy + n, code);
    }
    copy[n] = '\0';
    *out = copy;
    *out_len = n;
    return true;
}

static bool parse_number(parser *p, json_value *value) {
    size_t start = p->at;
    const char *t = p->text;
    if (p->at < p->len && t[p->at] == '-') p->at++;
    if (p->at >= p->len || t[p->at] < '0' || t[p->at] > '9') return fail(p, "invalid number");
    if (t[p->at] == '0') p->at++;
    else while (p->at < p->len && t[p->at] >= '0' && t[p->at] <= '9') p->at++;
    bool integer = true;
    if (p->at < p->len && t[p->at] == '.') {
        integer = false;
        p->at++;
        if (p->at >= p->len || t[p->at] < '0' || t[p->at] > '9') return fail(p, "invalid number");
        while (p->at < p->len && t[p->at] >= '0' && t[p->at] <= '9') p->at++;
    }
    if (p->at < p->len && (t[p->at] == 'e' || t[p->at] == 'E')) {
        integer = false;
        p->at++;
        if (p->at < p->len && (t[p->at] == '+' || t[p->at] == '-')) p->at++;
        if (p->at >= p->len || t[p->at] < '0' || t[p->at] > '9') return fail(p, "invalid number");
        while (p->at < p->len && t[p->at] >= '0' && t[p->at] <= '9') p->at++;
    }
    value->type = JSON_NUMBER;
    value->text = t + start;
    value->text_len = p->at - start;
    char digits[400];
    size_t n = value->text_len < sizeof digits - 1 ? value->text_len : sizeof digits - 1;
    memcpy(digits, value->text, n);
    digits[n] = '\0';
    value->negative = digits[0] == '-';
    if (integer) {
        /* Like serde_json, an integer outside i64 / u64 is read as a float. */
        bool overflow = false;
        uint64_t magnitude = 0;
        for (const char *d = digits + value->negative; *d; d++) {
            unsigned digit = (unsigned)(*d - '0');
            overflow |= magnitude > (UINT64_MAX - digit) / 10;
            magnitude = magnitude * 10 + digit;
        }
        value->magnitude = magnitude;
        value->is_integer = !overflow && (!value->negative || magnitude <= (uint64_t)INT64_MAX + 1);
    }
    if (!value->is_integer) value->real = strtod(digits, NULL);
    return true;
}

static bool parse_literal(parser *p, const char *word, json_value *value, json_type type, bool boolean) {
    /* Like serde_json, point at the first character that differs. */
    for (size_t i = 0; word[i]; i++, p->at++) {
        if (p->at >= p->len) return fail(p, "EOF while parsing a value");
        if (p->text[p->at] != word[i]) return fail(p, "expected ident");
    }
    value->type = type;
    value->boolean = boolean;
    return true;
}

/* Parses comma-separated items up to `close`, into a list it grows as it goes. */
static bool parse_items(parser *p, json_value *value, char close) {
    size_t capacity = 0;
    p->at++;
    skip_space(p);
    if (p->at < p->len && p->text[p->at] == close) return p->at++, true;
    for (;;) {
        skip_space(p);
        if (value->count == capacity) {
            capacity = capacity ? capacity * 2 : 4;
            size_t size = close == ']' ? sizeof(json_value) : sizeof(json_member);
            void *grown = allocate(p, capacity * size);
            if (value->count) memcpy(grown, close == ']' ? (void *)value->items : (void *)value->members, value->count * size);
            if (close == ']') value->items = grown;
            else value->members = grown;
        }
        if (close == ']') {
            if (!parse_value(p, &value->items[value->count])) return false;
        } else {
            json_member *member = &value->members[value->count];
            if (p->at >= p->len) return fail(p, "EOF while parsing an object");
            if (p->text[p->at] != '"') return fail(p, "key must be a string");
            p->at++;
            if (!parse_string(p, &member->key, &member->key_len)) return false;
            skip_space(p);
            if (p->at >= p->len) return fail(p, "EOF while parsing an object");
            if (p->text[p->at] != ':') return fail(p, "expected `:`");
            p->at++;
            if (!parse_value(p, &member->value)) return false;
        }
        value->count++;
        skip_space(p);
        if (p->at >= p->len) return fail(p, close == ']' ? "EOF while parsing a list" : "EOF while parsing an object");
        char c = p->text[p->at++];
        if (c == close) return true;
        if (c != ',') return p->at--, fail(p, close == ']' ? "expected `,` or `]`" : "expected `,` or `}`");
    }
}

static bool parse_value(parser *p, json_value *value) {
    memset(value, 0, sizeof *value);
    skip_space(p);
    if (p->at >= p->len) return fail(p, "EOF while parsing a value");
    if (++p->depth > 128) return fail(p, "recursion limit exceeded");
    bool ok;
    switch (p->text[p->at]) {
    case '{': value->type = JSON_OBJECT; ok = parse_items(p, value, '}'); break;
    case '[': value->type = JSON_ARRAY; ok = parse_items(p, value, ']'); break;
    case '"':
        p->at++;
        value->type = JSON_STRING;
        ok = parse_string(p, &value->string, &value->string_len);
        break;
    case 't': ok = parse_literal(p, "true", value, JSON_BOOLEAN, true); break;
    case 'f': ok = parse_literal(p, "false", value, JSON_BOOLEAN, false); break;
    case 'n': ok = parse_literal(p, "null", value, JSON_NULL, false); break;
    default:
        if (p->text[p->at] == '-' || (p->text[p->at] >= '0' && p->text[p->at] <= '9')) ok = parse_number(p, value);
        else ok = fail(p, "expected value");
    }
    p->depth--;
    return ok;
}

bool json_parse(const char *text, size_t len, json_arena **arena, json_value *value, char *error,
                size_t error_size) {
    parser p = {text, len, 0, arena, error, error_size, 0};
    if (!parse_value(&p, value)) return false;
    skip_space(&p);
    if (p.at < len) return fail(&p, "trailing characters");
    return true;
}

const json_value *json_get(const json_value *object, const char *key, size_t key_len) {
    if (object->type != JSON_OBJECT) return NULL;
    for (size_t i = object->count; i-- > 0;) {
        const json_member *member = &object->members[i];
        if (member->key_len == key_len && memcmp(member->key, key, key_len) == 0) return &member->value;
    }
    return NULL;
}

bool json_equal(const json_value *a, const json_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case JSON_NULL: return true;
    case JSON_BOOLEAN: return a->boolean == b->boolean;
    case JSON_NUMBER:
        if (a->is_integer != b->is_integer) return false;
        if (!a->is_integer) return a->real == b->real;
        return a->magnitude == b->magnitude && (a->negative == b->negative || a->magnitude == 0);
    case JSON_STRING:
        return a->string_len == b->string_len && memcmp(a->string, b->string, a->string_len) == 0;
    case JSON_ARRAY:
        if (a->count != b->count) return false;
        for (size_t i = 0; i < a->count; i++)
            if (!json_equal(&a->items[i], &b->items[i])) return false;
        return true;
    case JSON_OBJECT: {
        /* Members are compared as a map: a repeated key counts once, with its last value. */
        size_t distinct_a = 0, distinct_b = 0;
        for (size_t i = 0; i < a->count; i++) {
            const json_member *m = &a->members[i];
            if (json_get(a, m->key, m->key_len) != &m->value) continue;
            distinct_a++;
            const json_value *other = json_get(b, m->key, m->key_len);
            if (!other || !json_equal(&m->value, other)) return false;
        }
        for (size_t i = 0; i < b->count; i++)
            if (json_get(b, b->members[i].key, b->members[i].key_len) == &b->members[i].value) distinct_b++;
        return distinct_a == distinct_b;
    }
    }
    return false;
}

typedef struct {
    char *out;
    size_t size, len;
} writer;

static void put(writer *w, const char *text, size_t n) {
    for (size_t i = 0; i < n; i++, w->len++)
        if (w->len + 1 < w->size) w->out[w->len] = text[i];
    if (w->size) w->out[w->len + 1 < w->size ? w->len : w->size - 1] = '\0';
}

static void put_string(writer *w, const char *s, size_t n) {
    put(w, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char escaped[8];
        if (c == '"' || c == '\\') escaped[0] = '\\', escaped[1] = (char)c, put(w, escaped, 2);
        else if (c == '\n') put(w, "\\n", 2);
        else if (c == '\r') put(w, "\\r", 2);
        else if (c == '\t') put(w, "\\t", 2);
        else if (c == '\b') put(w, "\\b", 2);
        else if (c == '\f') put(w, "\\f", 2);
        else if (c < 0x20) snprintf(escaped, sizeof escaped, "\\u%04x", c), put(w, escaped, 6);
        else put(w, (const char *)&c, 1);
    }
    put(w, "\"", 1);
}

static void write_value(writer *w, const json_value *v) {
    switch (v->type) {
    case JSON_NULL: put(w, "null", 4); break;
    case JSON_BOOLEAN: v->boolean ? put(w, "true", 4) : put(w, "false", 5); break;
    case JSON_NUMBER: put(w, v->text, v->text_len); break;
    case JSON_STRING: put_string(w, v->string, v->string_len); break;
    case JSON_ARRAY:
        put(w, "[", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) put(w, ",", 1);
            write_value(w, &v->items[i]);
        }
        put(w, "]", 1);
        break;
    case JSON_OBJECT:
        put(w, "{", 1);
        for (size_t i = 0; i < v->count; i++) {
            if (i) put(w, ",", 1);
            put_string(w, v->members[i].key, v->members[i].key_len);
            put(w, ":", 1);
            write_value(w, &v->members[i].value);
        }
        put(w, "}", 1);
        break;
    }
}

void json_write(const json_value *value, char *out, size_t out_size) {
    writer w = {out, out_size, 0};
    if (out_size) out[0] = '\0';
    write_value(&w, value);
}

const char *json_type_name(json_type type) {
    static const char *names[] = {"null", "boolean", "number", "string", "array", "object"};
    return names[type];
}
