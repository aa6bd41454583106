package runnel

import "iter"

// Message is one input message, read in place from the batch: nothing is copied. Its byte
// slices (key, value, header values) share the batch's memory, which the next batch reuses:
// they are valid until Handle returns, so copy what you keep (bytes.Clone). Its strings
// (topic, source, header names) are the handler's to keep. Do not modify either.
type Message struct {
	batch  *batchView
	record *messageRecord
}

// Key is the message's key, or nil when the message has no key, which Kafka distinguishes
// from an empty key (a non-nil slice of length 0).
func (m Message) Key() []byte {
	key := m.record.key
	if key.offset == noKey {
		return nil
	}
	return m.batch.data[key.offset:key.end():key.end()]
}

// Value is the payload.
func (m Message) Value() []byte {
	value := m.record.value
	return m.batch.data[value.offset:value.end():value.end()]
}

// Headers are every header in the order the producer wrote them; a name may repeat.
func (m Message) Headers() Headers {
	return Headers{batch: m.batch, first: m.record.firstHeader, count: m.record.headerCount}
}

// Header is the value of the last header called name (names are case-sensitive), like Kafka's
// lastHeader; ok is false when there is none.
func (m Message) Header(name string) (value []byte, ok bool) {
	data := m.batch.data
	headers := m.batch.headers[m.record.firstHeader : m.record.firstHeader+m.record.headerCount]
	for i := len(headers) - 1; i >= 0; i-- {
		h := headers[i]
		if string(data[h.name.offset:h.name.end()]) == name { // a comparison that does not allocate
			return data[h.value.offset:h.value.end():h.value.end()], true
		}
	}
	return nil, false
}

// Topic is the topic the message was read from.
func (m Message) Topic() string { return m.batch.topics[m.record.topic] }

// Partition is the Kafka partition, or -1 for inputs without partitions.
func (m Message) Partition() int32 { return m.record.partition }

// Offset is the Kafka offset, or -1 for inputs without offsets.
func (m Message) Offset() int64 { return m.record.offset }

// Timestamp is in milliseconds since the Unix epoch; ok is false when the input does not know
// it.
func (m Message) Timestamp() (millis int64, ok bool) {
	return m.record.timestamp, m.record.timestamp != -1
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
	header := h.batch.headers[int(h.first)+i]
	data := h.batch.data
	return intern(data[header.name.offset:header.name.end()]), data[header.value.offset:header.value.end():header.value.end()]
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
