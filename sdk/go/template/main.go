// {{name}} is a Runnel message handler. It upper-cases every value (ASCII only), keeping key
// and headers, to the default topic: change Handle to do what {{name}} should.
package main

import (
	"encoding/binary"

	"{{name}}/runnel"
)

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

// uppercase upper-cases the ASCII letters of value in place, eight bytes at a time: Go's
// WebAssembly code spends several instructions on every iteration of a loop, so the fewer
// iterations the better.
func uppercase(value []byte) {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(value); i += 8 {
		word := binary.LittleEndian.Uint64(value[i:])
		low7 := word &^ highs
		atLeastA := low7 + (0x80-'a')*ones  // high bit set in each byte >= 'a'
		pastZ := low7 + (0x80-'z'-1)*ones   // high bit set in each byte > 'z'
		isLower := atLeastA &^ pastZ &^ word & highs // and not a non-ASCII byte
		binary.LittleEndian.PutUint64(value[i:], word^(isLower>>2)) // 0x80 >> 2 is 'a' - 'A'
	}
	for ; i < len(value); i++ {
		if c := value[i]; 'a' <= c && c <= 'z' {
			value[i] = c - ('a' - 'A')
		}
	}
}

func init() { runnel.Export(newHandler) }

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
