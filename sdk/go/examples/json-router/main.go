// JSON router routes JSON records to the topic named by one of their top-level fields.
//
// Settings:
//   - route_field (required): a top-level string field naming the target topic; records
//     without it go to the pipeline's default output topic.
//   - drop_field and drop_value (optional, together): records whose drop_field equals
//     drop_value are dropped. A string field matches its content (drop_value = "test" matches
//     "test"); any field also matches its JSON text (true, 42, null, "test", {"a": 1}),
//     compared as JSON so spacing does not matter.
//
// The value is sent unchanged, with its key and headers. A value that is not a JSON object
// fails permanently.
package main

import (
	"bytes"
	"encoding/json"
	"errors"

	"runnelsdk/runnel"
)

type router struct {
	routeField string
	drop       *dropRule
}

type dropRule struct {
	field string
	// text is drop_value as written, matched against string fields.
	text string
	// value is drop_value parsed as JSON when it is JSON, matched against any field; parsed
	// once here.
	value  any
	isJSON bool
}

func (rule *dropRule) matches(field json.RawMessage) bool {
	var text string
	if json.Unmarshal(field, &text) == nil && text == rule.text {
		return true
	}
	value, err := parseJSON(field)
	return rule.isJSON && err == nil && jsonEqual(rule.value, value)
}

func newRouter(config *runnel.Config) (runnel.Handler, error) {
	routeField, err := config.Require("route_field")
	if err != nil {
		return nil, err
	}
	r := &router{routeField: routeField}
	field, hasField := config.Get("drop_field")
	value, hasValue := config.Get("drop_value")
	if hasField != hasValue {
		return nil, errors.New("`drop_field` and `drop_value` work together: set both or neither")
	}
	if hasField {
		parsed, err := parseJSON([]byte(value))
		r.drop = &dropRule{field: field, text: value, value: parsed, isJSON: err == nil}
	}
	return r, nil
}

func (r *router) Handle(message runnel.Message, out *runnel.Outputs) error {
	topic, send, err := r.route(message.Value())
	if err != nil || !send {
		return err
	}
	// The original bytes go out, not re-serialized JSON.
	output := out.Send(message.Value()).Key(message.Key()).Headers(message.Headers())
	if topic != "" {
		output.Topic(topic)
	}
	return nil
}

// route says where a record goes: to topic ("" for the default topic), or nowhere when send
// is false.
func (r *router) route(value []byte) (topic string, send bool, err error) {
	if _, err := parseJSON(value); err != nil {
		return "", false, runnel.Permanent("value is not valid JSON: " + err.Error())
	}
	if kind := jsonType(value); kind != "object" {
		return "", false, runnel.Permanent("value is a JSON " + kind + ", expected an object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(value, &fields); err != nil {
		return "", false, runnel.Permanent("value is not valid JSON: " + err.Error())
	}
	if r.drop != nil {
		if field, ok := fields[r.drop.field]; ok && r.drop.matches(field) {
			return "", false, nil
		}
	}
	field, ok := fields[r.routeField]
	if !ok {
		return "", true, nil
	}
	if json.Unmarshal(field, &topic) != nil || topic == "" {
		var compact bytes.Buffer
		json.Compact(&compact, field)
		return "", false, runnel.Permanent("field `" + r.routeField +
			"` must be a non-empty string naming the target topic, found " + compact.String())
	}
	return topic, true, nil
}

// parseJSON parses a whole document, keeping numbers as written so that jsonEqual can tell
// integers from floats as serde_json does.
func parseJSON(text []byte) (any, error) {
	decoder := json.NewDecoder(bytes.NewReader(text))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	if decoder.More() {
		return nil, errors.New("trailing characters")
	}
	if _, err := decoder.Token(); err == nil {
		return nil, errors.New("trailing characters")
	}
	return value, nil
}

// jsonType names the type of a valid JSON document by its first character.
func jsonType(text []byte) string {
	text = bytes.TrimLeft(text, " \t\r\n")
	switch text[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	}
	return "number"
}

func init() { runnel.Export(newRouter) }

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
