package runnel

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The test vectors of wit/ENCODING.md, read from the repository.
type vectors struct {
	Batches []struct {
		Name     string          `json:"name"`
		Hex      string          `json:"hex"`
		Source   string          `json:"source"`
		Messages []vectorMessage `json:"messages"`
	} `json:"batches"`
	Answers []struct {
		Name     string          `json:"name"`
		Hex      string          `json:"hex"`
		Outcomes []vectorOutcome `json:"outcomes"`
	} `json:"answers"`
}

type vectorMessage struct {
	Topic     string      `json:"topic"`
	Partition int32       `json:"partition"`
	Offset    int64       `json:"offset"`
	Timestamp *int64      `json:"timestamp"`
	Key       *string     `json:"key"`
	Value     string      `json:"value"`
	Headers   [][2]string `json:"headers"`
}

type vectorOutcome struct {
	Outputs []struct {
		Topic   *string     `json:"topic"`
		Key     *string     `json:"key"`
		Value   string      `json:"value"`
		Headers [][2]string `json:"headers"`
	} `json:"outputs"`
	Failure *struct {
		Kind    string `json:"kind"`
		Message string `json:"message"`
	} `json:"failure"`
}

func readVectors(t *testing.T) vectors {
	t.Helper()
	text, err := os.ReadFile("../../../wit/encoding-vectors.json")
	if err != nil {
		t.Fatalf("the vectors are read from the repository: %v", err)
	}
	var v vectors
	if err := json.Unmarshal(text, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func unhex(t *testing.T, text string) []byte {
	t.Helper()
	b, err := hex.DecodeString(text)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func optionalBytes(s *string) []byte {
	if s == nil {
		return nil
	}
	return []byte(*s)
}

func headerList(pairs [][2]string) []Header {
	headers := []Header{}
	for _, pair := range pairs {
		headers = append(headers, Header{pair[0], []byte(pair[1])})
	}
	return headers
}

// decoded is what a handler can see of a message, for comparison.
type decoded struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64
	HasTime   bool
	Key       []byte
	Value     []byte
	Headers   []Header
	Source    string
}

func decode(m Message) decoded {
	d := decoded{Topic: m.Topic(), Partition: m.Partition(), Offset: m.Offset(), Key: m.Key(),
		Value: m.Value(), Source: m.Source(), Headers: []Header{}}
	d.Timestamp, d.HasTime = m.Timestamp()
	for name, value := range m.Headers().All() {
		d.Headers = append(d.Headers, Header{name, value})
	}
	return d
}

func TestReaderDecodesEveryBatchVector(t *testing.T) {
	for _, vector := range readVectors(t).Batches {
		batch, err := parseBatch(unhex(t, vector.Hex), nil)
		if err != nil {
			t.Fatalf("%s: %v", vector.Name, err)
		}
		if batch.count != len(vector.Messages) {
			t.Fatalf("%s: %d messages, want %d", vector.Name, batch.count, len(vector.Messages))
		}
		for i, want := range vector.Messages {
			got := decode(batch.message(i))
			expected := decoded{Topic: want.Topic, Partition: want.Partition, Offset: want.Offset,
				Timestamp: -1, Key: optionalBytes(want.Key), Value: []byte(want.Value),
				Headers: headerList(want.Headers), Source: vector.Source}
			if want.Timestamp != nil {
				expected.Timestamp, expected.HasTime = *want.Timestamp, true
			}
			if len(got.Value) == 0 {
				got.Value = []byte{}
			}
			if !reflect.DeepEqual(got, expected) {
				t.Errorf("%s, message %d:\n got %+v\nwant %+v", vector.Name, i, got, expected)
			}
			if (got.Key == nil) != (want.Key == nil) {
				t.Errorf("%s, message %d: no key and an empty key must differ", vector.Name, i)
			}
		}
	}
}

// expectedOutcomes are the outcomes a vector describes, in the form decodeAnswer returns.
func expectedOutcomes(vector []vectorOutcome) []TestOutcome {
	var outcomes []TestOutcome
	for _, o := range vector {
		if o.Failure != nil {
			kind := map[string]FailureKind{"transient": TransientFailure, "permanent": PermanentFailure}[o.Failure.Kind]
			outcomes = append(outcomes, TestOutcome{Failure: &Failure{kind, o.Failure.Message}})
			continue
		}
		outputs := []TestOutput{}
		for _, out := range o.Outputs {
			output := TestOutput{Key: optionalBytes(out.Key), Value: []byte(out.Value), Headers: headerList(out.Headers)}
			if out.Topic != nil {
				output.Topic = *out.Topic
			}
			outputs = append(outputs, output)
		}
		outcomes = append(outcomes, TestOutcome{Outputs: outputs})
	}
	return outcomes
}

// normalize makes empty and nil lists compare equal, keeping nil and empty keys apart.
func normalize(outcomes []TestOutcome) []TestOutcome {
	for i := range outcomes {
		if outcomes[i].Failure == nil && outcomes[i].Outputs == nil {
			outcomes[i].Outputs = []TestOutput{}
		}
		for j := range outcomes[i].Outputs {
			output := &outcomes[i].Outputs[j]
			if output.Headers == nil {
				output.Headers = []Header{}
			}
			if len(output.Value) == 0 {
				output.Value = []byte{}
			}
			for k := range output.Headers {
				if output.Headers[k].Value == nil {
					output.Headers[k].Value = []byte{}
				}
			}
		}
	}
	return outcomes
}

func TestReaderDecodesEveryAnswerVector(t *testing.T) {
	for _, vector := range readVectors(t).Answers {
		got, err := decodeAnswer(unhex(t, vector.Hex), len(vector.Outcomes))
		if err != nil {
			t.Fatalf("%s: %v", vector.Name, err)
		}
		if want := expectedOutcomes(vector.Outcomes); !reflect.DeepEqual(normalize(got), normalize(want)) {
			t.Errorf("%s:\n got %+v\nwant %+v", vector.Name, got, want)
		}
	}
}

// replay is a handler that answers message i with outcome i of a vector.
type replay struct {
	outcomes []TestOutcome
	next     int
}

func (r *replay) Handle(_ Message, out *Outputs) error {
	outcome := r.outcomes[r.next]
	r.next++
	for _, output := range outcome.Outputs {
		b := out.Send(output.Value).Key(output.Key)
		for _, h := range output.Headers {
			b.Header(h.Name, h.Value)
		}
		if output.Topic != "" {
			b.Topic(output.Topic)
		}
	}
	if outcome.Failure != nil {
		// Outputs sent before a failure must not survive it.
		out.Send([]byte("discarded")).Topic("discarded-topic").Header("h", nil)
		return outcome.Failure
	}
	return nil
}

func TestWriterAnswersDecodeToEveryAnswerVector(t *testing.T) {
	for _, vector := range readVectors(t).Answers {
		want := expectedOutcomes(vector.Outcomes)
		inputs := make([]TestMessage, len(want))
		for i := range inputs {
			inputs[i] = TestMessage{Topic: "in", Value: []byte("x"), Timestamp: -1}
		}
		var out Outputs
		answer := handleBatch(&replay{outcomes: want}, encodeBatch("src", inputs), &out)
		got, err := decodeAnswer(answer, len(inputs))
		if err != nil {
			t.Fatalf("%s: %v", vector.Name, err)
		}
		if !reflect.DeepEqual(normalize(got), normalize(expectedOutcomes(vector.Outcomes))) {
			t.Errorf("%s:\n got %+v\nwant %+v", vector.Name, got, want)
		}
		if strings.Contains(string(answer), "discarded") {
			t.Errorf("%s: the outputs and topics of failed messages are gone", vector.Name)
		}
	}
}

func threeMessages() []byte {
	return encodeBatch("orders-consumer", []TestMessage{
		{Topic: "in", Value: []byte("one"), Key: []byte("k"), Headers: []Header{{"h", []byte("v")}}},
		{Topic: "in", Value: []byte("two")},
		{Topic: "other", Value: []byte("three")},
	})
}

func TestMalformedBatchesAreRejected(t *testing.T) {
	good := threeMessages()
	at := func(field int) int { return int(le.Uint32(good[field:])) }
	messagesAt, headersAt, topicsAt, dataAt := at(20), at(24), at(16), at(28)
	patch := func(offset int, value uint32) []byte {
		b := append([]byte(nil), good...)
		le.PutUint32(b[offset:], value)
		return b
	}
	cases := []struct {
		name, error string
		batch       []byte
	}{
		{"bad magic", "does not start with", patch(0, 0)},
		{"truncated header", "shorter than its 40-byte header", good[:39]},
		{"truncated tables", "runs past the end", good[:len(good)-1]},
		{"topics table outside the buffer", "the topics table", patch(16, 0xFFFF_FFFF)},
		{"message table outside the buffer", "the messages table", patch(4, 1000)},
		{"header table outside the buffer", "the headers table", patch(12, 1000)},
		{"data area past the end", "data_at", patch(28, 0xFFFF_FFFF)},
		{"source outside the data area", "the source", patch(36, 1000)},
		{"value outside the data area", "the value of message 1", patch(messagesAt+48+36, 1<<30)},
		{"key outside the data area", "the key of message 0", patch(messagesAt+24, 1<<30)},
		{"no-key marker with a length", "marks no key but has a length", patch(messagesAt+48+28, 3)},
		{"unknown topic", "names topic 5 of 2", patch(messagesAt+20, 5)},
		{"headers outside the header table", "has headers 0..9", patch(messagesAt+44, 9)},
		{"header value outside the data area", "the value of header 0", patch(headersAt+12, 1000)},
		{"topic name outside the data area", "topic 1", patch(topicsAt+8+4, 1000)},
	}
	// Bad UTF-8 where a string is required: overwrite the first byte of a string.
	for _, text := range []struct{ name, at string }{{"source", "the source"}, {"topic name", "topic 0"}, {"header name", "the name of header 0"}} {
		var spanAt int
		switch text.name {
		case "source":
			spanAt = 32
		case "topic name":
			spanAt = topicsAt
		case "header name":
			spanAt = headersAt
		}
		b := append([]byte(nil), good...)
		b[dataAt+int(le.Uint32(b[spanAt:]))] = 0xFF
		cases = append(cases, struct {
			name, error string
			batch       []byte
		}{"bad UTF-8 in the " + text.name, text.at + " is not UTF-8", b})
	}
	for _, c := range cases {
		_, err := parseBatch(c.batch, nil)
		var decodeError *DecodeError
		if !errors.As(err, &decodeError) || !strings.Contains(err.Error(), c.error) {
			t.Errorf("%s: got error %v, want one containing %q", c.name, err, c.error)
			continue
		}
		// The plugin still answers: every message the header claims fails permanently.
		var out Outputs
		answer := handleBatch(HandlerFunc(echo), c.batch, &out)
		count := claimedCount(c.batch)
		outcomes, err := decodeAnswer(answer, count)
		if err != nil {
			t.Fatalf("%s: the answer to a malformed batch is well-formed: %v", c.name, err)
		}
		for _, outcome := range outcomes {
			if outcome.Failure == nil || outcome.Failure.Kind != PermanentFailure ||
				!strings.Contains(outcome.Failure.Message, "malformed batch") {
				t.Errorf("%s: got %+v, want a permanent malformed-batch failure", c.name, outcome)
			}
		}
	}
}

func echo(message Message, out *Outputs) error {
	out.Send(message.Value()).Key(message.Key()).Headers(message.Headers())
	return nil
}

func TestNoKeyDiffersFromEmptyKey(t *testing.T) {
	outcomes := HandleTestBatch(HandlerFunc(echo), "src",
		TestMessage{Topic: "in", Value: []byte("a")},
		TestMessage{Topic: "in", Value: []byte("b"), Key: []byte{}},
		TestMessage{Topic: "in", Value: []byte("c"), Key: []byte("k")},
	)
	keys := []string{}
	for _, outcome := range outcomes {
		key := outcome.Outputs[0].Key
		keys = append(keys, map[bool]string{true: "none", false: "'" + string(key) + "'"}[key == nil])
	}
	if want := []string{"none", "''", "'k'"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v, want %v", keys, want)
	}
}

func TestHeaderGivesTheLastOfItsName(t *testing.T) {
	var seen []string
	HandleTestBatch(HandlerFunc(func(m Message, _ *Outputs) error {
		kind, _ := m.Header("kind")
		_, upper := m.Header("Kind")
		_, missing := m.Header("missing")
		seen = append(seen, string(kind), map[bool]string{true: "found", false: "-"}[upper || missing])
		return nil
	}), "src", TestMessage{Topic: "in", Headers: []Header{{"kind", []byte("a")}, {"trace", nil}, {"kind", []byte("b")}}})
	if want := []string{"b", "-"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("got %v, want %v", seen, want)
	}
}

func TestMetadataAndBuilder(t *testing.T) {
	var got decoded
	outcomes := HandleTestBatch(HandlerFunc(func(m Message, out *Outputs) error {
		got = decode(m)
		out.SendString("first").Key([]byte("k1")).Header("h", []byte("1"))
		out.Send([]byte("second")).Key([]byte("long key")).Key(nil).Key([]byte{}).
			Topic("t1").Topic("t2").Header("a", []byte("1")).Headers(m.Headers())
		out.SendString("third").EditValue(func(v []byte) { v[0] = 'T' }).Topic("t1")
		return nil
	}), "orders-consumer", TestMessage{Topic: "in", Partition: 3, Offset: 42, Timestamp: 1_700_000_000_000,
		Value: []byte("v"), Headers: []Header{{"x", []byte("y")}}})
	if got.Partition != 3 || got.Offset != 42 || got.Timestamp != 1_700_000_000_000 || !got.HasTime ||
		got.Source != "orders-consumer" || got.Topic != "in" {
		t.Errorf("metadata: %+v", got)
	}
	want := []TestOutput{
		{Key: []byte("k1"), Value: []byte("first"), Headers: []Header{{"h", []byte("1")}}},
		{Topic: "t2", Key: []byte{}, Value: []byte("second"), Headers: []Header{{"a", []byte("1")}, {"x", []byte("y")}}},
		{Topic: "t1", Value: []byte("Third"), Headers: []Header{}},
	}
	if !reflect.DeepEqual(normalize(outcomes)[0].Outputs, want) {
		t.Errorf("got %+v\nwant %+v", outcomes[0].Outputs, want)
	}
}

func TestFailuresAndPanicsFailOnlyTheirMessage(t *testing.T) {
	outcomes := HandleTestBatch(HandlerFunc(func(m Message, out *Outputs) error {
		out.Send(m.Value()).Topic("only-" + string(m.Value()))
		switch string(m.Value()) {
		case "transient":
			return Transient("try later")
		case "permanent":
			return Permanent("never")
		case "plain":
			return errors.New("plain error")
		case "panic":
			var missing map[string]*int
			return errors.New(string(rune(*missing["x"])))
		}
		return nil
	}), "src",
		TestMessage{Topic: "in", Value: []byte("ok")},
		TestMessage{Topic: "in", Value: []byte("transient")},
		TestMessage{Topic: "in", Value: []byte("permanent")},
		TestMessage{Topic: "in", Value: []byte("plain")},
		TestMessage{Topic: "in", Value: []byte("panic")},
		TestMessage{Topic: "in", Value: []byte("ok")},
	)
	summary := []string{}
	for _, o := range outcomes {
		if o.Failure != nil {
			summary = append(summary, o.Failure.Kind.String()+": "+o.Failure.Message)
		} else {
			summary = append(summary, o.Outputs[0].Topic)
		}
	}
	want := []string{"only-ok", "transient: try later", "permanent: never", "permanent: plain error",
		"permanent: the handler panicked: runtime error: invalid memory address or nil pointer dereference", "only-ok"}
	if !reflect.DeepEqual(summary, want) {
		t.Errorf("got  %q\nwant %q", summary, want)
	}
}

func TestHandleBeforeInitFailsEveryMessage(t *testing.T) {
	outcomes := HandleTestBatch(nil, "src", TestMessage{Topic: "in"}, TestMessage{Topic: "in"})
	for _, o := range outcomes {
		if o.Failure == nil || !strings.Contains(o.Failure.Message, "before init") {
			t.Errorf("got %+v", o)
		}
	}
}

func TestInit(t *testing.T) {
	defer Export(nil)
	Export(func(config *Config) (Handler, error) {
		if _, err := config.Require("prefix"); err != nil {
			return nil, err
		}
		return HandlerFunc(echo), nil
	})
	if err := initHandler(NewConfig(Setting{"prefix", "old"})); err != nil || handler == nil {
		t.Fatalf("init failed: %v", err)
	}
	err := initHandler(NewConfig())
	if err == nil || err.Error() != "missing required setting `prefix`: add it to this plugin's config" {
		t.Errorf("got %v", err)
	}
	if handler != nil {
		t.Error("a failed init leaves no handler behind")
	}
	config := NewConfig(Setting{"a", "1"}, Setting{"b", "2"}, Setting{"a", "3"})
	if value, _ := config.Get("a"); value != "3" {
		t.Errorf("the last repeated setting wins, got %q", value)
	}
}

func TestAnEmptyOrUnreadableBatchGetsAnEmptyAnswer(t *testing.T) {
	if outcomes := HandleTestBatch(HandlerFunc(echo), "src"); len(outcomes) != 0 {
		t.Errorf("got %+v", outcomes)
	}
	var out Outputs
	if _, err := decodeAnswer(handleBatch(HandlerFunc(echo), []byte("RNB"), &out), 0); err != nil {
		t.Error(err)
	}
}
