package main

import (
	"strings"
	"testing"

	"runnelsdk/runnel"
)

func newTestRouter(t *testing.T, settings ...runnel.Setting) *router {
	t.Helper()
	handler, err := newRouter(runnel.NewConfig(settings...))
	if err != nil {
		t.Fatal(err)
	}
	return handler.(*router)
}

// routed describes a route as the Rust example's tests do.
func routed(r *router, record string) string {
	topic, send, err := r.route([]byte(record))
	switch {
	case err != nil:
		return "error: " + err.(*runnel.Failure).Message
	case !send:
		return "Drop"
	case topic == "":
		return "DefaultTopic"
	}
	return "Topic(" + topic + ")"
}

func TestInitRequiresRouteFieldAndDropSettingsTogether(t *testing.T) {
	if _, err := newRouter(runnel.NewConfig()); err == nil || !strings.Contains(err.Error(), "`route_field`") {
		t.Errorf("got %v", err)
	}
	_, err := newRouter(runnel.NewConfig(setting("route_field", "type"), setting("drop_field", "test")))
	if err == nil || !strings.Contains(err.Error(), "set both or neither") {
		t.Errorf("got %v", err)
	}
}

func TestRoutesByFieldOrToDefaultTopic(t *testing.T) {
	r := newTestRouter(t, setting("route_field", "type"))
	cases := map[string]string{
		`{"type":"orders"}`: "Topic(orders)",
		`{"other":1}`:       "DefaultTopic",
		`{"type":3}`:        "error: field `type` must be a non-empty string naming the target topic, found 3",
		`{"type":""}`:       `error: field ` + "`type`" + ` must be a non-empty string naming the target topic, found ""`,
		`[1]`:               "error: value is a JSON array, expected an object",
	}
	for record, want := range cases {
		if got := routed(r, record); got != want {
			t.Errorf("%s: got %q, want %q", record, got, want)
		}
	}
	if got := routed(r, `{"type":`); !strings.HasPrefix(got, "error: value is not valid JSON: ") {
		t.Errorf("invalid JSON: %q", got)
	}
}

func TestDropsByStringOrJSONText(t *testing.T) {
	withDrop := func(value string) *router {
		return newTestRouter(t, setting("route_field", "type"), setting("drop_field", "test"),
			setting("drop_value", value))
	}
	cases := []struct{ dropValue, record, want string }{
		{"yes", `{"test":"yes"}`, "Drop"},
		{"yes", `{"test":"no"}`, "DefaultTopic"},
		{`"yes"`, `{"test":"yes"}`, "Drop"},
		{"true", `{"test":true}`, "Drop"},
		{"42", `{"test":42,"type":"t"}`, "Drop"},
		{"42", `{"test":42.0}`, "DefaultTopic"},
		{"null", `{"test":null}`, "Drop"},
		{"null", `{}`, "DefaultTopic"},
		{`{"a": [1]}`, `{"test":{"a":[1]}}`, "Drop"},
	}
	for _, c := range cases {
		if got := routed(withDrop(c.dropValue), c.record); got != c.want {
			t.Errorf("drop_value %s, %s: got %q, want %q", c.dropValue, c.record, got, c.want)
		}
	}
}

func TestSendsTheOriginalBytes(t *testing.T) {
	r := newTestRouter(t, setting("route_field", "type"))
	value := []byte(`{ "type" : "orders",  "n": 1.50 }`)
	outcomes := runnel.HandleTestBatch(r, "src", runnel.TestMessage{Topic: "in", Value: value, Key: []byte("k"), Timestamp: -1})
	output := outcomes[0].Outputs[0]
	if string(output.Value) != string(value) || output.Topic != "orders" || string(output.Key) != "k" {
		t.Errorf("got %+v", output)
	}
}

func setting(name, value string) runnel.Setting { return runnel.Setting{Name: name, Value: value} }
