package runnel

import "iter"

// Message is one input message, read in place from the batch: nothing is copied. Its byte
// slices and strings share the batch's memory, which never changes, so they stay valid even
// after the handler returns; do not modify them.
type Message struct {
	batch  *batchView
	record []byte // the message's 48-byte record
}

// Key is the message's key, or nil when the message has no key, which Kafka distinguishes
// from an empty key (a non-nil slice of length 0).
func (m Message) Key() []byte {
	s := readSpan(m.record, 24)
	if s.offset == noKey {
		return nil
	}
	return m.batch.data[s.offset:s.end():s.end()]
}

// Value is the payload.
func (m Message) Value() []byte {
	s := readSpan(m.record, 32)
	return m.batch.data[s.offset:s.end():s.end()]
}

// Headers are every header in the order the producer wrote them; a name may repeat.
func (m Message) Headers() Headers {
	return Headers{batch: m.batch, first: le.Uint32(m.record[40:]), count: le.Uint32(m.record[44:])}
}

// Header is the value of the last header called name (names are case-sensitive), like Kafka's
// lastHeader; ok is false when there is none.
func (m Message) Header(name string) (value []byte, ok bool) {
	headers := m.Headers()
	for i := headers.Len() - 1; i >= 0; i-- {
		if headerName, value := headers.At(i); headerName == name {
			return value, true
		}
	}
	return nil, false
}

// Topic is the topic the message was read from.
func (m Message) Topic() string { return m.batch.topics[le.Uint32(m.record[20:])] }

// Partition is the Kafka partition, or -1 for inputs without partitions.
func (m Message) Partition() int32 { return int32(le.Uint32(m.record[16:])) }

// Offset is the Kafka offset, or -1 for inputs without offsets.
func (m Message) Offset() int64 { return int64(le.Uint64(m.record[0:])) }

// Timestamp is in milliseconds since the Unix epoch; ok is false when the input does not know
// it.
func (m Message) Timestamp() (millis int64, ok bool) {
	millis = int64(le.Uint64(m.record[8:]))
	return millis, millis != -1
}

// Source is the name of the pipeline input (Kafka consumer or Dapr binding) the message came
// from.
func (m Message) Source() string { return m.batch.source }

// Headers are the headers of one message, in order.
type Headers struct {
	batch        *batchView
	first, count uint32
}

// Len is the number of headers.
func (h Headers) Len() int { return int(h.count) }

// At is header i, counting from 0.
func (h Headers) At(i int) (name string, value []byte) {
	if i < 0 || i >= int(h.count) {
		panic("runnel: header index out of range")
	}
	record := h.batch.headers[(int(h.first)+i)*headerRecordLen:]
	nameSpan, valueSpan := readSpan(record, 0), readSpan(record, 8)
	data := h.batch.data
	return view(data[nameSpan.offset:nameSpan.end()]), data[valueSpan.offset:valueSpan.end():valueSpan.end()]
}

// All yields every header in order: for name, value := range message.Headers().All().
func (h Headers) All() iter.Seq2[string, []byte] {
	return func(yield func(string, []byte) bool) {
		for i := range h.Len() {
			if !yield(h.At(i)) {
				return
			}
		}
	}
}
