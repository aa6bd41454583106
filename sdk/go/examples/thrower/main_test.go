package main

import (
	"testing"

	"runnelsdk/runnel"
)

func TestAPanicFailsOnlyItsMessagePermanently(t *testing.T) {
	message := func(value string) runnel.TestMessage {
		return runnel.TestMessage{Topic: "in", Key: []byte("k"), Value: []byte(value), Timestamp: -1}
	}
	outcomes := runnel.HandleTestBatch(thrower{}, "test", message("before"), message("throw"), message("after"))
	if got := string(outcomes[0].Outputs[0].Value); got != "BEFORE" {
		t.Errorf("before the panic: got %q", got)
	}
	want := runnel.Permanent("the handler panicked: thrower: throw requested")
	if failure := outcomes[1].Failure; failure == nil || *failure != *want || len(outcomes[1].Outputs) != 0 {
		t.Errorf("the panicking message: got %+v", outcomes[1])
	}
	if got := string(outcomes[2].Outputs[0].Value); got != "AFTER" {
		t.Errorf("after the panic: got %q", got)
	}
}
