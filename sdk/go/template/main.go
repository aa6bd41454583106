// {{name}} is a Runnel message handler. It upper-cases every value (ASCII only), keeping key
// and headers, to the default topic: change Handle to do what {{name}} should.
package main

import "{{name}}/runnel"

type handler struct{}

// newHandler reads the plugin's settings (config.Get, config.Require) when an instance starts;
// an error refuses the plugin.
func newHandler(config *runnel.Config) (runnel.Handler, error) {
	return handler{}, nil
}

func (handler) Handle(message runnel.Message, out *runnel.Outputs) error {
	out.Send(message.Value()).
		EditValue(uppercase).
		Key(message.Key()).
		Headers(message.Headers())
	return nil
}

func uppercase(value []byte) {
	for i, c := range value {
		if 'a' <= c && c <= 'z' {
			value[i] = c - ('a' - 'A')
		}
	}
}

func init() { runnel.Export(newHandler) }

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
