package runnel

// What a handler's own tests need: messages built by hand, run through exactly the decoding
// and encoding a host call goes through, and the answer read back with every rule of
// wit/ENCODING.md checked. None of this is linked into a plugin that does not call it.

// Header is one header of a TestMessage or a TestOutput.
type Header struct {
	Name  string
	Value []byte
}

// TestMessage is an input message built by hand.
type TestMessage struct {
	Topic     string
	Partition int32  // -1 for inputs without partitions
	Offset    int64  // -1 for inputs without offsets
	Timestamp int64  // milliseconds since the Unix epoch, -1 when unknown
	Key       []byte // nil: no key
	Value     []byte
	Headers   []Header
}

// TestOutput is one output of a handled message, as the host reads it.
type TestOutput struct {
	Topic   string // "" for the pipeline's default output topic
	Key     []byte // nil: no key
	Value   []byte
	Headers []Header
}

// TestOutcome is what the handler did with one message: its outputs, or its failure.
type TestOutcome struct {
	Outputs []TestOutput
	Failure *Failure // nil when the message succeeded
}

// HandleTestBatch runs h over messages, encoded as the host encodes a batch from source, and
// returns the outcome of each message as the host reads the answer. It panics if the answer
// breaks the encoding, which would be a bug in this package.
func HandleTestBatch(h Handler, source string, messages ...TestMessage) []TestOutcome {
	var out Outputs
	answer := handleBatch(h, encodeBatch(source, messages), &out)
	outcomes, err := decodeAnswer(answer, len(messages))
	if err != nil {
		panic("runnel: the answer breaks the encoding: " + err.Error())
	}
	return outcomes
}

// encodeBatch lays a batch out as the host's writer does: header, data area, then tables.
func encodeBatch(source string, messages []TestMessage) []byte {
	var data []byte
	push := func(b []byte) span {
		s := span{uint32(len(data)), uint32(len(b))}
		data = append(data, b...)
		return s
	}
	sourceSpan := push([]byte(source))
	var topics []string
	var topicSpans []span
	var messageTable, headerTable []byte
	headerCount := 0
	for _, m := range messages {
		topic := -1
		for k, known := range topics {
			if known == m.Topic {
				topic = k
			}
		}
		if topic < 0 {
			topic = len(topics)
			topics = append(topics, m.Topic)
			topicSpans = append(topicSpans, push([]byte(m.Topic)))
		}
		key := span{noKey, 0}
		if m.Key != nil {
			key = push(m.Key)
		}
		value := push(m.Value)
		record := make([]byte, messageLen)
		le.PutUint64(record[0:], uint64(m.Offset))
		le.PutUint64(record[8:], uint64(m.Timestamp))
		le.PutUint32(record[16:], uint32(m.Partition))
		le.PutUint32(record[20:], uint32(topic))
		putSpan(record, 24, key)
		putSpan(record, 32, value)
		le.PutUint32(record[40:], uint32(headerCount))
		le.PutUint32(record[44:], uint32(len(m.Headers)))
		messageTable = append(messageTable, record...)
		for _, h := range m.Headers {
			header := make([]byte, headerRecordLen)
			putSpan(header, 0, push([]byte(h.Name)))
			putSpan(header, 8, push(h.Value))
			headerTable = append(headerTable, header...)
			headerCount++
		}
	}
	buffer := make([]byte, headerLen, headerLen+len(data))
	buffer = append(buffer, data...)
	topicsAt := len(buffer)
	for _, s := range topicSpans {
		buffer = append(buffer, make([]byte, spanLen)...)
		putSpan(buffer, len(buffer)-spanLen, s)
	}
	messagesAt := len(buffer)
	buffer = append(buffer, messageTable...)
	headersAt := len(buffer)
	buffer = append(buffer, headerTable...)
	copy(buffer, batchMagic[:])
	for i, field := range []int{len(messages), len(topics), headerCount, topicsAt, messagesAt, headersAt, headerLen} {
		le.PutUint32(buffer[4+4*i:], uint32(field))
	}
	putSpan(buffer, 32, sourceSpan)
	return buffer
}

// decodeAnswer reads an answer to a batch of count messages, checking every rule of the
// encoding, as the host does before it trusts any of it.
func decodeAnswer(buffer []byte, count int) ([]TestOutcome, error) {
	if err := readPreamble(buffer, answerMagic, "the answer"); err != nil {
		return nil, err
	}
	field := func(at int) uint32 { return le.Uint32(buffer[at:]) }
	if int(field(4)) != count {
		return nil, malformed("the answer has ", itoa(uint64(field(4))), " outcomes for ", itoa(uint64(count)), " messages")
	}
	topicCount, outputCount, headerCount := field(8), field(12), field(16)
	topicTable, err := table(buffer, field(20), topicCount, spanLen, "topics")
	if err != nil {
		return nil, err
	}
	outcomeTable, err := table(buffer, field(24), uint32(count), outcomeLen, "outcomes")
	if err != nil {
		return nil, err
	}
	outputTable, err := table(buffer, field(28), outputCount, outputLen, "outputs")
	if err != nil {
		return nil, err
	}
	headerTable, err := table(buffer, field(32), headerCount, headerRecordLen, "headers")
	if err != nil {
		return nil, err
	}
	dataAt := field(36)
	if uint64(dataAt) > uint64(len(buffer)) {
		return nil, malformed("data_at ", itoa(uint64(dataAt)), " is past the end")
	}
	data := buffer[dataAt:]
	what := func(name string, i int) func() string { return func() string { return name + " " + itoa(uint64(i)) } }

	topics := make([]string, topicCount)
	for k := range topics {
		if topics[k], err = textOf(data, readSpan(topicTable, k*spanLen), what("topic", k)); err != nil {
			return nil, err
		}
	}
	headers := make([]Header, headerCount)
	for i := range headers {
		record := headerTable[i*headerRecordLen:]
		if headers[i].Name, err = textOf(data, readSpan(record, 0), what("the name of header", i)); err != nil {
			return nil, err
		}
		if headers[i].Value, err = bytesOf(data, readSpan(record, 8), what("the value of header", i)); err != nil {
			return nil, err
		}
	}
	outputs := make([]TestOutput, outputCount)
	for i := range outputs {
		record := outputTable[i*outputLen:]
		topic := le.Uint32(record)
		if topic > topicCount {
			return nil, malformed("output ", itoa(uint64(i)), " names topic ", itoa(uint64(topic)), " of ", itoa(uint64(topicCount)))
		}
		if topic > 0 {
			outputs[i].Topic = topics[topic-1]
		}
		if outputs[i].Key, err = keyOf(data, readSpan(record, 4), what("the key of output", i)); err != nil {
			return nil, err
		}
		if outputs[i].Value, err = bytesOf(data, readSpan(record, 12), what("the value of output", i)); err != nil {
			return nil, err
		}
		first, n := uint64(le.Uint32(record[20:])), uint64(le.Uint32(record[24:]))
		if first+n > uint64(headerCount) {
			return nil, malformed("output ", itoa(uint64(i)), " has headers ", itoa(first), "..", itoa(first+n),
				" but the header table has ", itoa(uint64(headerCount)))
		}
		outputs[i].Headers = headers[first : first+n : first+n]
	}
	outcomes := make([]TestOutcome, count)
	start := uint32(0)
	for i := range outcomes {
		record := outcomeTable[i*outcomeLen:]
		end, kind := le.Uint32(record), FailureKind(le.Uint32(record[4:]))
		if end < start || end > outputCount {
			return nil, malformed("outcome ", itoa(uint64(i)), " ends its outputs at ", itoa(uint64(end)),
				", outside ", itoa(uint64(start)), "..", itoa(uint64(outputCount)))
		}
		switch kind {
		case Succeeded:
			outcomes[i].Outputs = outputs[start:end:end]
		case TransientFailure, PermanentFailure:
			if end != start {
				return nil, malformed("outcome ", itoa(uint64(i)), " failed but has outputs")
			}
			message, err := textOf(data, readSpan(record, 8), what("the failure message of outcome", i))
			if err != nil {
				return nil, err
			}
			outcomes[i].Failure = &Failure{kind, message}
		default:
			return nil, malformed("outcome ", itoa(uint64(i)), " has unknown status ", itoa(uint64(kind)))
		}
		start = end
	}
	if start != outputCount {
		return nil, malformed("the outcomes end at output ", itoa(uint64(start)), " of ", itoa(uint64(outputCount)))
	}
	return outcomes, nil
}
