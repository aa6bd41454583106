// Thrower panics on the value `throw` and upper-cases (ASCII) every other value, keeping key
// and headers: the throwing handler that tests/throwing.rs runs in every language. The SDK
// recovers the panic and fails only that message, permanently, with the panic's value.
package main

import (
	"runnelsdk/runnel"
)

type thrower struct{}

func (thrower) Handle(message runnel.Message, out *runnel.Outputs) error {
	if string(message.Value()) == "throw" {
		panic("thrower: throw requested")
	}
	out.Send(message.Value()).
		EditValue(asciiUppercase).
		Key(message.Key()).
		Headers(message.Headers())
	return nil
}

// asciiUppercase upper-cases the ASCII letters of value in place.
func asciiUppercase(value []byte) {
	for i, c := range value {
		if 'a' <= c && c <= 'z' {
			value[i] = c - ('a' - 'A')
		}
	}
}

func init() {
	runnel.Export(func(*runnel.Config) (runnel.Handler, error) { return thrower{}, nil })
}

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
