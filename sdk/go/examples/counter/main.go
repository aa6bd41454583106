// Counter counts the messages seen per key and sends each message on with its running count
// in a header: an example of a handler configured by init that keeps state across messages.
//
// Settings:
//   - header (optional, default "count"): the name of the header that carries the count.
//
// The value is sent unchanged, with its key and headers, to the default topic. A message
// without a key is counted apart from one with an empty key, as Kafka tells them apart.
// Counts live in the plugin instance: each instance counts the messages it handled, from zero
// when it starts.
package main

import (
	"errors"
	"strconv"
	"strings"

	"runnelsdk/runnel"
)

type counter struct {
	header string
	counts map[countedKey]uint64
	digits []byte // reused for each count's text
}

// countedKey tells a missing key from an empty one.
type countedKey struct {
	present bool
	key     string
}

func newCounter(config *runnel.Config) (runnel.Handler, error) {
	header, ok := config.Get("header")
	if !ok {
		header = "count"
	}
	if header == "" {
		return nil, errors.New("setting `header` must not be empty")
	}
	if strings.HasPrefix(header, "runnel-") {
		return nil, errors.New("setting `header` is `" + header +
			"`, but header names starting with `runnel-` are set by the host")
	}
	return &counter{header: header, counts: map[countedKey]uint64{}}, nil
}

func (c *counter) Handle(message runnel.Message, out *runnel.Outputs) error {
	count := c.count(message.Key())
	c.digits = strconv.AppendUint(c.digits[:0], count, 10)
	out.Send(message.Value()).
		Key(message.Key()).
		Headers(message.Headers()).
		Header(c.header, c.digits)
	return nil
}

func (c *counter) count(key []byte) uint64 {
	// string(key) copies the key, which lives in the batch's memory only until Handle returns.
	k := countedKey{key != nil, string(key)}
	c.counts[k]++
	return c.counts[k]
}

func init() { runnel.Export(newCounter) }

// main is never called: the plugin is a library whose exports the host calls.
func main() {}
