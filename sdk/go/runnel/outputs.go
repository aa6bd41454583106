package runnel

// Outputs is where a handler sends the outputs of the message it is handling. Outputs go to
// the pipeline's default output topic unless OutputBuilder.Topic says otherwise. If the
// handler then fails the message, its outputs are discarded.
//
// The answer is written straight into its encoded form: the data area grows as outputs are
// sent, and the tables are appended after it when the batch is done. Every buffer is kept for
// the next batch.
type Outputs struct {
	answer []byte // the 40-byte header, then the data area, then the tables
	topics []string
	// Where finish wrote each topic's name.
	topicNames []span
	outcomes   []outcomeRecord
	outputs    []outputRecord
	headers    []headerRecord
	// Where the current message began, to roll back its outputs if it fails.
	mark struct{ data, topics, outputs, headers int }
}

// OutputBuilder sets the optional parts of the output that Outputs.Send just appended. Each
// method rewrites that output in place and returns the builder, so calls chain.
type OutputBuilder struct{ out *Outputs }

// begin starts the answer to a batch of count messages, sized for one output per message
// about as large as its input.
func (o *Outputs) begin(count int, dataBytes int) {
	if cap(o.answer) < headerLen+dataBytes {
		o.answer = make([]byte, headerLen, headerLen+dataBytes+count*(outcomeLen+outputLen))
	}
	o.answer = o.answer[:headerLen]
	o.topics = o.topics[:0]
	o.outcomes = o.outcomes[:0]
	o.outputs = o.outputs[:0]
	o.headers = o.headers[:0]
	o.startMessage()
}

func (o *Outputs) startMessage() {
	o.mark.data = len(o.answer)
	o.mark.topics = len(o.topics)
	o.mark.outputs = len(o.outputs)
	o.mark.headers = len(o.headers)
}

// push appends b to the data area.
func (o *Outputs) push(b []byte) span {
	s := span{uint32(len(o.answer) - headerLen), uint32(len(b))}
	o.answer = append(o.answer, b...)
	return s
}

func (o *Outputs) pushString(s string) span {
	at := span{uint32(len(o.answer) - headerLen), uint32(len(s))}
	o.answer = append(o.answer, s...)
	return at
}

// Send sends value to the default topic, without key or headers; the returned builder changes
// that. value is copied: the caller may reuse it.
func (o *Outputs) Send(value []byte) OutputBuilder {
	o.outputs = append(o.outputs, outputRecord{
		key:         span{noKey, 0},
		value:       o.push(value),
		firstHeader: uint32(len(o.headers)),
	})
	return OutputBuilder{o}
}

// SendString is Send for a string value.
func (o *Outputs) SendString(value string) OutputBuilder {
	o.outputs = append(o.outputs, outputRecord{
		key:         span{noKey, 0},
		value:       o.pushString(value),
		firstHeader: uint32(len(o.headers)),
	})
	return OutputBuilder{o}
}

func (b OutputBuilder) last() *outputRecord { return &b.out.outputs[len(b.out.outputs)-1] }

// Key sets the key; nil (the default) sends the output without a key, which Kafka
// distinguishes from an empty key: pass a non-nil empty slice for that. Passing a message's
// Key() keeps its key as it was.
func (b OutputBuilder) Key(key []byte) OutputBuilder {
	if key == nil {
		b.last().key = span{noKey, 0}
	} else {
		b.last().key = b.out.push(key)
	}
	return b
}

// EditValue changes the sent value in place, without another copy: sending the input and
// editing the copy is the cheapest way to transform a message. The slice is valid only during
// the call.
func (b OutputBuilder) EditValue(edit func(value []byte)) OutputBuilder {
	value := b.last().value
	start := headerLen + int(value.offset)
	edit(b.out.answer[start : start+int(value.length) : start+int(value.length)])
	return b
}

// Header adds a header; names may repeat.
func (b OutputBuilder) Header(name string, value []byte) OutputBuilder {
	o := b.out
	o.headers = append(o.headers, headerRecord{o.pushString(name), o.push(value)})
	b.last().headerCount++
	return b
}

// Headers adds every header of headers, for example a message's own:
// .Headers(message.Headers()).
func (b OutputBuilder) Headers(headers Headers) OutputBuilder {
	if headers.count > 0 { // kept small enough to inline: most messages have no headers
		b.addHeaders(headers)
	}
	return b
}

func (b OutputBuilder) addHeaders(headers Headers) {
	data := headers.batch.data
	for _, h := range headers.batch.headers[headers.first : headers.first+headers.count] {
		b.out.headers = append(b.out.headers, headerRecord{
			b.out.push(data[h.name.offset:h.name.end()]), b.out.push(data[h.value.offset:h.value.end()]),
		})
	}
	b.last().headerCount += headers.count
}

// Topic sends the output to topic instead of the pipeline's default output topic.
func (b OutputBuilder) Topic(topic string) OutputBuilder {
	o := b.out
	for k, known := range o.topics {
		if known == topic {
			b.last().topic = uint32(k + 1)
			return b
		}
	}
	o.topics = append(o.topics, topic)
	b.last().topic = uint32(len(o.topics))
	return b
}

// finishMessage records the outcome of the message whose outputs were sent since the previous
// call: keeps its outputs, or discards them and records the failure.
func (o *Outputs) finishMessage(failure *Failure) {
	if failure != nil {
		o.failMessage(failure)
		return
	}
	o.succeed()
}

// succeed keeps the outputs sent since the previous message. It is what every message that
// does not fail goes through, kept small enough to be inlined into handleFrom's loop: a
// call costs Go's WebAssembly code a dozen instructions or more.
func (o *Outputs) succeed() {
	o.outcomes = append(o.outcomes, outcomeRecord{outputsEnd: uint32(len(o.outputs))})
	o.startMessage()
}

// failMessage discards the outputs sent since the previous message and records failure.
func (o *Outputs) failMessage(failure *Failure) {
	o.answer = o.answer[:o.mark.data]
	o.topics = o.topics[:o.mark.topics]
	o.outputs = o.outputs[:o.mark.outputs]
	o.headers = o.headers[:o.mark.headers]
	o.outcomes = append(o.outcomes, outcomeRecord{
		outputsEnd: uint32(len(o.outputs)),
		kind:       failure.Kind,
		message:    o.pushString(failure.Message),
	})
	o.startMessage()
}

// finish appends the tables and writes the header. The answer stays owned by o: it is valid
// until the next begin.
func (o *Outputs) finish() []byte {
	// Topic names are written to the data area only now, so that a topic that only failed
	// outputs named is gone.
	o.topicNames = o.topicNames[:0]
	for _, topic := range o.topics {
		o.topicNames = append(o.topicNames, o.pushString(topic))
	}
	topicsAt := len(o.answer)
	o.answer = append(o.answer, tableBytes(o.topicNames)...)
	outcomesAt := len(o.answer)
	o.answer = append(o.answer, tableBytes(o.outcomes)...)
	outputsAt := len(o.answer)
	o.answer = append(o.answer, tableBytes(o.outputs)...)
	headersAt := len(o.answer)
	o.answer = append(o.answer, tableBytes(o.headers)...)
	a := o.answer
	copy(a, answerMagic[:])
	for i, field := range [...]int{len(o.outcomes), len(o.topics), len(o.outputs), len(o.headers),
		topicsAt, outcomesAt, outputsAt, headersAt, headerLen} {
		le.PutUint32(a[4+4*i:], uint32(field))
	}
	return a
}

func putSpan(b []byte, at int, s span) {
	le.PutUint32(b[at:], s.offset)
	le.PutUint32(b[at+4:], s.length)
}
