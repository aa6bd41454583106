package runnel

import (
	"testing"
	"unsafe"
)

// The records are read and written in place, so their Go layout must be the encoding's.
func TestRecordsHaveTheEncodingsSizes(t *testing.T) {
	sizes := map[string][2]uintptr{
		"span":    {unsafe.Sizeof(span{}), spanLen},
		"message": {unsafe.Sizeof(messageRecord{}), messageLen},
		"header":  {unsafe.Sizeof(headerRecord{}), headerRecordLen},
		"outcome": {unsafe.Sizeof(outcomeRecord{}), outcomeLen},
		"output":  {unsafe.Sizeof(outputRecord{}), outputLen},
	}
	for name, size := range sizes {
		if size[0] != size[1] {
			t.Errorf("%s record: %d bytes in Go, %d in the encoding", name, size[0], size[1])
		}
	}
	if offset := unsafe.Offsetof(messageRecord{}.key); offset != 24 {
		t.Errorf("a message's key is at %d", offset)
	}
}
