/* A small JSON reader: parses a document into a tree, compares values as JSON and writes them
 * back compactly. Enough for routing records; not a general-purpose library. */
#ifndef JSON_H
#define JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { JSON_NULL, JSON_BOOLEAN, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
typedef struct json_member json_member;

struct json_value {
    json_type type;
    bool boolean;
    /* A number is an integer (is_integer, negative, magnitude) or a float (real): like
     * serde_json, 42 and 42.0 are different values. */
    bool is_integer, negative;
    uint64_t magnitude;
    double real;
    const char *text; /* the number's text as written */
    size_t text_len;
    char *string; /* a string's content, unescaped */
    size_t string_len;
    json_value *items; /* an array's items */
    json_member *members; /* an object's members, in order */
    size_t count;
};

struct json_member {
    char *key;
    size_t key_len;
    json_value value;
};

/* The memory of one parsed document: every value of it is freed at once. */
typedef struct json_arena json_arena;

/* Parses text into *value; returns false and writes why into error otherwise. Trailing
 * non-whitespace is an error. */
bool json_parse(const char *text, size_t len, json_arena **arena, json_value *value, char *error,
                size_t error_size);
void json_free(json_arena *arena);

/* The member called key (the last one, if repeated), or NULL. */
const json_value *json_get(const json_value *object, const char *key, size_t key_len);

/* Whether two values are equal as JSON: objects regardless of member order. */
bool json_equal(const json_value *a, const json_value *b);

/* Writes value as compact JSON into out (NUL-terminated, cut at out_size). */
void json_write(const json_value *value, char *out, size_t out_size);

/* "null", "boolean", "number", "string", "array" or "object". */
const char *json_type_name(json_type type);

#endif
