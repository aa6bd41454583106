package runnel

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// Sizes and markers of wit/ENCODING.md, version 1.
const (
	headerLen       = 40 // both directions start with a 40-byte header
	spanLen         = 8
	messageLen      = 48
	headerRecordLen = 16
	outcomeLen      = 16
	outputLen       = 32
	noKey           = 0xFFFF_FFFF // a key span with this offset means "no key"
)

var (
	batchMagic  = [4]byte{'R', 'N', 'B', '1'}
	answerMagic = [4]byte{'R', 'N', 'O', '1'}
)

// le reads little-endian integers at any byte position: the encoding aligns nothing.
var le = binary.LittleEndian

// batchView is an encoded batch whose every table, span and string has been checked once,
// so that messages read from it without checking again.
type batchView struct {
	bytes    []byte
	data     []byte
	source   string
	topics   []string
	messages []messageRecord
	headers  []headerRecord
	count    int
}

// The records of wit/ENCODING.md, laid out as Go lays out these structs on a little-endian
// machine (WebAssembly is one), so that tables are read and written in place, a record at a
// time, rather than field by field. WebAssembly loads need no alignment; neither do x86 and
// ARM, where the native tests run. sizes_test.go checks the sizes.
type (
	messageRecord struct {
		offset, timestamp        int64
		partition                int32
		topic                    uint32
		key, value               span
		firstHeader, headerCount uint32
	}
	headerRecord  struct{ name, value span }
	outcomeRecord struct {
		outputsEnd uint32
		kind       FailureKind
		message    span
	}
	outputRecord struct {
		topic                              uint32 // 0 for the default topic, k+1 for topic k
		key, value                         span
		firstHeader, headerCount, reserved uint32
	}
)

// records views n records of type T at byte at of b, which the caller checked is long enough.
func records[T any](b []byte, at, n uint32) []T {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(&b[at])), n)
}

// tableBytes is the encoded form of a table held as records.
func tableBytes[T any](table []T) []byte {
	if len(table) == 0 {
		return nil
	}
	var record T
	return unsafe.Slice((*byte)(unsafe.Pointer(&table[0])), len(table)*int(unsafe.Sizeof(record)))
}

// span is a run of bytes of the data area.
type span struct{ offset, length uint32 }

func readSpan(b []byte, at int) span {
	return span{le.Uint32(b[at:]), le.Uint32(b[at+4:])}
}

func (s span) end() uint64 { return uint64(s.offset) + uint64(s.length) }

// DecodeError says how an encoded batch or answer breaks wit/ENCODING.md.
type DecodeError struct{ reason string }

func (e *DecodeError) Error() string { return e.reason }

func malformed(parts ...string) error {
	reason := ""
	for _, part := range parts {
		reason += part
	}
	return &DecodeError{reason}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// table checks that count records of size bytes at byte at lie inside buffer and returns them.
func table(buffer []byte, at, count uint32, size int, name string) ([]byte, error) {
	end := uint64(at) + uint64(count)*uint64(size)
	if end > uint64(len(buffer)) {
		return nil, malformed("the ", name, " table (", itoa(uint64(count)), " records at byte ",
			itoa(uint64(at)), ") runs past the end of the ", itoa(uint64(len(buffer))), "-byte buffer")
	}
	return buffer[at:end], nil
}

// bytesOf checks that s lies inside the data area and returns its bytes; what names s in an
// error.
func bytesOf(data []byte, s span, what func() string) ([]byte, error) {
	if s.end() > uint64(len(data)) {
		return nil, malformed(what(), " (", itoa(uint64(s.length)), " bytes at ", itoa(uint64(s.offset)),
			") runs past the ", itoa(uint64(len(data))), "-byte data area")
	}
	return data[s.offset:s.end():s.end()], nil
}

// textOf is bytesOf for a span that must hold UTF-8, as an interned string.
func textOf(data []byte, s span, what func() string) (string, error) {
	b, err := bytesOf(data, s, what)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", malformed(what(), " is not UTF-8")
	}
	return intern(b), nil
}

// names holds every topic, source and header name seen, so that the strings a handler gets
// for them are its own to keep (the batch's memory is reused by the next batch) without an
// allocation per message: a name is copied the first time it is seen.
var names = map[string]string{}

// maxNames bounds names for inputs whose header names never repeat.
const maxNames = 4096

// recentNames are the last names intern returned: consecutive batches mostly name the same
// source and topics, and comparing costs less than hashing.
var (
	recentNames [4]string
	nextRecent  int
)

func intern(b []byte) string {
	for _, name := range recentNames {
		if string(b) == name { // a comparison that does not allocate
			return name
		}
	}
	name, ok := names[string(b)] // a lookup that does not allocate
	if !ok {
		if len(names) >= maxNames {
			clear(names)
		}
		name = string(b)
		names[name] = name
	}
	recentNames[nextRecent] = name
	nextRecent = (nextRecent + 1) % len(recentNames)
	return name
}

// keyOf is bytesOf for a key span: nil for the "no key" marker, a non-nil slice otherwise.
func keyOf(data []byte, s span, what func() string) ([]byte, error) {
	if s.offset == noKey {
		if s.length != 0 {
			return nil, malformed(what(), " marks no key but has a length")
		}
		return nil, nil
	}
	return bytesOf(data, s, what)
}

// view returns b as a string without copying; b must never change afterwards.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// readPreamble checks the length and magic of a buffer's header.
func readPreamble(buffer []byte, magic [4]byte, what string) error {
	if len(buffer) < headerLen {
		return malformed(what, " is ", itoa(uint64(len(buffer))), " bytes, shorter than its 40-byte header")
	}
	if [4]byte(buffer[:4]) != magic {
		return malformed(what, " does not start with \"", string(magic[:]), "\": it is not encoding version 1")
	}
	return nil
}

// parseBatch checks every table, span and string of an encoded batch, once. topics is reused
// for the topic names so that a batch costs no allocation of its own.
func parseBatch(buffer []byte, topics []string) (batchView, error) {
	if err := readPreamble(buffer, batchMagic, "the batch"); err != nil {
		return batchView{}, err
	}
	count := le.Uint32(buffer[4:])
	topicCount := le.Uint32(buffer[8:])
	headerCount := le.Uint32(buffer[12:])
	dataAt := le.Uint32(buffer[28:])
	b := batchView{bytes: buffer, count: int(count)}
	topicsAt, messagesAt, headersAt := le.Uint32(buffer[16:]), le.Uint32(buffer[20:]), le.Uint32(buffer[24:])
	if err := checkTable(buffer, topicsAt, topicCount, spanLen, "topics"); err != nil {
		return batchView{}, err
	}
	if err := checkTable(buffer, messagesAt, count, messageLen, "messages"); err != nil {
		return batchView{}, err
	}
	if err := checkTable(buffer, headersAt, headerCount, headerRecordLen, "headers"); err != nil {
		return batchView{}, err
	}
	if uint64(dataAt) > uint64(len(buffer)) {
		return batchView{}, malformed("data_at ", itoa(uint64(dataAt)), " is past the end")
	}
	b.data = buffer[dataAt:]
	b.messages = records[messageRecord](buffer, messagesAt, count)
	b.headers = records[headerRecord](buffer, headersAt, headerCount)
	var err error
	if b.source, err = textOf(b.data, readSpan(buffer, 32), func() string { return "the source" }); err != nil {
		return batchView{}, err
	}
	b.topics = topics[:0]
	for i, s := range records[span](buffer, topicsAt, topicCount) {
		name, err := textOf(b.data, s, func() string { return "topic " + itoa(uint64(i)) })
		if err != nil {
			return batchView{}, err
		}
		b.topics = append(b.topics, name)
	}
	dataLen := uint64(len(b.data))
	for i, header := range b.headers {
		if _, err := textOf(b.data, header.name, func() string { return "the name of header " + itoa(uint64(i)) }); err != nil {
			return batchView{}, err
		}
		if header.value.end() > dataLen {
			return batchView{}, pastTheData(b.data, header.value, "the value of header "+itoa(uint64(i)))
		}
	}
	// The check every message of every batch goes through, kept to arithmetic and one
	// branch (each branch costs Go's WebAssembly code a trip through its dispatch loop): every
	// limit is a difference of values below 2^33 that wraps to a negative number exactly when
	// the limit is broken. The error is worded only when there is one.
	for i := range b.messages {
		m := &b.messages[i]
		keyEnd := m.key.end()
		if m.key.offset == noKey {
			keyEnd = uint64(m.key.length) << 32 // 0 for "no key"; past any data area with a length
		}
		broken := int64(uint64(topicCount)-1-uint64(m.topic)) |
			int64(dataLen-keyEnd) |
			int64(dataLen-m.value.end()) |
			int64(uint64(headerCount)-uint64(m.firstHeader)-uint64(m.headerCount))
		if broken < 0 {
			return batchView{}, b.messageError(i, topicCount, headerCount)
		}
	}
	return b, nil
}

// checkTable checks that count records of size bytes at byte at lie inside buffer.
func checkTable(buffer []byte, at, count uint32, size int, name string) error {
	_, err := table(buffer, at, count, size, name)
	return err
}

func pastTheData(data []byte, s span, what string) error {
	return malformed(what, " (", itoa(uint64(s.length)), " bytes at ", itoa(uint64(s.offset)),
		") runs past the ", itoa(uint64(len(data))), "-byte data area")
}

// messageError says what is wrong with message i, which failed parseBatch's check.
func (b *batchView) messageError(i int, topicCount, headerCount uint32) error {
	m := &b.messages[i]
	name := "message " + itoa(uint64(i))
	if m.topic >= topicCount {
		return malformed(name, " names topic ", itoa(uint64(m.topic)), " of ", itoa(uint64(topicCount)))
	}
	if _, err := keyOf(b.data, m.key, func() string { return "the key of " + name }); err != nil {
		return err
	}
	if _, err := bytesOf(b.data, m.value, func() string { return "the value of " + name }); err != nil {
		return err
	}
	first, count := uint64(m.firstHeader), uint64(m.headerCount)
	return malformed(name, " has headers ", itoa(first), "..", itoa(first+count),
		" but the header table has ", itoa(uint64(headerCount)))
}

// message returns message i, which parseBatch checked.
func (b *batchView) message(i int) Message {
	return Message{batch: b, record: &b.messages[i]}
}
