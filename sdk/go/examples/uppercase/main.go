// Uppercase upper-cases every value (ASCII only), keeping key and headers, to the default
// topic: the smallest complete Runnel plugin.
package main

import "runnelsdk/runnel"

type uppercase struct{}

func (uppercase) Handle(message runnel.Message, out *runnel.Outputs) error {
	// Sending the value and editing the copy in place saves an allocation per message.
	out.Send(message.Value()).
		EditValue(asciiUppercase).
		Key(message.Key()).
		Headers(message.Headers())
	return nil
}

func asciiUppercase(value []byte) {
	for i, c := range value {
		if 'a' <= c && c <= 'z' {
			value[i] = c - ('a' - 'A')
		}
	}
}

func init() {
	runnel.Export(func(*runnel.Config) (runnel.Handler, error) { return uppercase{}, nil })
}

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
