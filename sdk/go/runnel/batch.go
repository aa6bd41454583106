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
	messages []byte // the message table
	headers  []byte // the header table
	count    int
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

// textOf is bytesOf for a span that must hold UTF-8. The string shares the buffer's memory:
// the buffer never changes once received, so no copy is needed.
func textOf(data []byte, s span, what func() string) (string, error) {
	b, err := bytesOf(data, s, what)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", malformed(what(), " is not UTF-8")
	}
	return view(b), nil
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
	var err error
	topicTable, err := table(buffer, le.Uint32(buffer[16:]), topicCount, spanLen, "topics")
	if err != nil {
		return batchView{}, err
	}
	if b.messages, err = table(buffer, le.Uint32(buffer[20:]), count, messageLen, "messages"); err != nil {
		return batchView{}, err
	}
	if b.headers, err = table(buffer, le.Uint32(buffer[24:]), headerCount, headerRecordLen, "headers"); err != nil {
		return batchView{}, err
	}
	if uint64(dataAt) > uint64(len(buffer)) {
		return batchView{}, malformed("data_at ", itoa(uint64(dataAt)), " is past the end")
	}
	b.data = buffer[dataAt:]
	if b.source, err = textOf(b.data, readSpan(buffer, 32), func() string { return "the source" }); err != nil {
		return batchView{}, err
	}
	b.topics = topics[:0]
	for i := range int(topicCount) {
		name, err := textOf(b.data, readSpan(topicTable, i*spanLen), func() string { return "topic " + itoa(uint64(i)) })
		if err != nil {
			return batchView{}, err
		}
		b.topics = append(b.topics, name)
	}
	for i := range int(headerCount) {
		record := b.headers[i*headerRecordLen:]
		if _, err := textOf(b.data, readSpan(record, 0), func() string { return "the name of header " + itoa(uint64(i)) }); err != nil {
			return batchView{}, err
		}
		if _, err := bytesOf(b.data, readSpan(record, 8), func() string { return "the value of header " + itoa(uint64(i)) }); err != nil {
			return batchView{}, err
		}
	}
	for i := range b.count {
		if err := b.checkMessage(i, topicCount, headerCount); err != nil {
			return batchView{}, err
		}
	}
	return b, nil
}

// checkMessage checks that message i names a topic and headers that exist, and a key and a
// value inside the data area.
func (b *batchView) checkMessage(i int, topicCount, headerCount uint32) error {
	record := b.messages[i*messageLen : (i+1)*messageLen]
	name := func() string { return "message " + itoa(uint64(i)) }
	if topic := le.Uint32(record[20:]); topic >= topicCount {
		return malformed(name(), " names topic ", itoa(uint64(topic)), " of ", itoa(uint64(topicCount)))
	}
	if _, err := keyOf(b.data, readSpan(record, 24), func() string { return "the key of " + name() }); err != nil {
		return err
	}
	if _, err := bytesOf(b.data, readSpan(record, 32), func() string { return "the value of " + name() }); err != nil {
		return err
	}
	first, count := uint64(le.Uint32(record[40:])), uint64(le.Uint32(record[44:]))
	if first+count > uint64(headerCount) {
		return malformed(name(), " has headers ", itoa(first), "..", itoa(first+count),
			" but the header table has ", itoa(uint64(headerCount)))
	}
	return nil
}

// message returns message i, which parseBatch checked.
func (b *batchView) message(i int) Message {
	return Message{batch: b, record: b.messages[i*messageLen : (i+1)*messageLen : (i+1)*messageLen]}
}
