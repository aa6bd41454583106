package main

import (
	"testing"

	"{{name}}/runnel"
)

func TestUppercasesTheValueAndKeepsKeyAndHeaders(t *testing.T) {
	h, err := newHandler(runnel.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	outcomes := runnel.HandleTestBatch(h, "test", runnel.TestMessage{
		Topic: "in", Key: []byte("k"), Value: []byte("hello"), Timestamp: -1,
		Headers: []runnel.Header{{Name: "trace", Value: []byte("1")}},
	})
	output := outcomes[0].Outputs[0]
	if string(output.Value) != "HELLO" || string(output.Key) != "k" || len(output.Headers) != 1 {
		t.Errorf("got %+v", output)
	}
}
