package main

import (
	"strings"
	"testing"

	"runnelsdk/runnel"
)

func TestCountsEachKeyApartAndNoKeyApartFromEmpty(t *testing.T) {
	handler, err := newCounter(runnel.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	c := handler.(*counter)
	if c.header != "count" {
		t.Errorf("default header %q", c.header)
	}
	got := []uint64{c.count([]byte("a")), c.count([]byte("b")), c.count([]byte("a")), c.count(nil), c.count([]byte{}), c.count(nil)}
	want := []uint64{1, 1, 2, 1, 1, 2}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("counts %v, want %v", got, want)
		}
	}
}

func TestSendsTheCountInAHeader(t *testing.T) {
	handler, _ := newCounter(runnel.NewConfig(runnel.Setting{Name: "header", Value: "seen"}))
	message := runnel.TestMessage{Topic: "in", Key: []byte("k"), Value: []byte("v"), Timestamp: -1,
		Headers: []runnel.Header{{Name: "trace", Value: []byte("1")}}}
	outcomes := runnel.HandleTestBatch(handler, "src", message, message)
	last := outcomes[1].Outputs[0]
	if string(last.Value) != "v" || string(last.Key) != "k" || len(last.Headers) != 2 ||
		last.Headers[1].Name != "seen" || string(last.Headers[1].Value) != "2" {
		t.Errorf("got %+v", last)
	}
}

func TestRefusesAnEmptyOrHostHeaderName(t *testing.T) {
	if _, err := newCounter(runnel.NewConfig(runnel.Setting{Name: "header", Value: ""})); err == nil ||
		!strings.Contains(err.Error(), "empty") {
		t.Errorf("got %v", err)
	}
	if _, err := newCounter(runnel.NewConfig(runnel.Setting{Name: "header", Value: "runnel-count"})); err == nil ||
		!strings.Contains(err.Error(), "set by the host") {
		t.Errorf("got %v", err)
	}
}
