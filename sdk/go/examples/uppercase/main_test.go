package main

import (
	"bytes"
	"testing"

	"runnelsdk/runnel"
)

func TestUppercasesOnlyASCIILettersAtEveryPosition(t *testing.T) {
	value := make([]byte, 0, 300)
	for b := range 256 {
		value = append(value, byte(b))
	}
	value = append(value, "hello, wörld"...)
	want := bytes.Clone(value)
	for i, c := range want {
		if 'a' <= c && c <= 'z' {
			want[i] = c - 32
		}
	}
	for start := range 8 { // every alignment of the eight-byte steps
		got := bytes.Clone(value[start:])
		asciiUppercase(got)
		if !bytes.Equal(got, want[start:]) {
			t.Fatalf("from byte %d: got %q, want %q", start, got, want[start:])
		}
	}
	for length := range 80 { // every length of the last, overlapping word and of the blocks
		got := bytes.Clone(value[:length])
		asciiUppercase(got)
		if !bytes.Equal(got, want[:length]) {
			t.Fatalf("%d bytes: got %q, want %q", length, got, want[:length])
		}
	}
}

func TestKeepsKeyAndHeaders(t *testing.T) {
	outcomes := runnel.HandleTestBatch(&uppercase{}, "test", runnel.TestMessage{
		Topic: "in", Key: []byte("k"), Value: []byte("hello"), Timestamp: -1,
		Headers: []runnel.Header{{Name: "trace", Value: []byte("1")}},
	})
	output := outcomes[0].Outputs[0]
	if string(output.Value) != "HELLO" || string(output.Key) != "k" || len(output.Headers) != 1 {
		t.Errorf("got %+v", output)
	}
}
