//go:build wasip1

package runnel

// The canonical-ABI glue of the runnel:plugin world (wit/runnel.wit), written by hand for Go's
// wasip1 port: what wit-bindgen would generate for another language. The host writes each
// call's arguments into memory that cabi_realloc hands out, calls an export, and reads the
// result through the pointer the export returns.
//
// Go's collector never moves heap objects, so an address handed to the host stays valid as
// long as Go itself still references the object; the package-level variables below are those
// references.

import "unsafe"

//go:wasmimport runnel:plugin/log@0.2.0 log
func logImport(level uint32, message string)

func hostLog(level logLevel, message string) { logImport(uint32(level), message) }

// adapterArena is memory for the WASI adapter, which allocates its state while Go's runtime
// is still starting, when no Go function can run: build.sh adds to the module an allocator
// over this array written in plain WebAssembly (see adapterarena/main.go), which finds the
// array by its marker. The marker also keeps the array in the data section, where Go's own
// allocator never hands out memory. Bytes 24..32 hold the allocator's next free address.
var adapterArena = [256 << 10]byte{'r', 'u', 'n', 'n', 'e', 'l', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'a', 'r', 'e', 'n', 'a'}

// The arena is only ever used from outside Go; this reference keeps the linker from dropping it.
func init() { adapterArenaAddress = uintptr(unsafe.Pointer(&adapterArena)) }

var adapterArenaAddress uintptr

// received holds what cabi_realloc handed out until the export that reads it has taken its
// own reference (or copy): the host holds only the address, which the collector cannot see.
var received [][]uint64

// cabi_realloc allocates memory for the host to write a call's arguments into. Memory is
// allocated as 8-byte words so that it has the alignment of any argument of this world.
//
//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	if newSize == 0 {
		// The canonical ABI never reads through the pointer of an empty list.
		return unsafe.Pointer(uintptr(align))
	}
	words := make([]uint64, (newSize+7)/8)
	if old != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), newSize), unsafe.Slice((*byte)(old), min(oldSize, newSize)))
	}
	received = append(received, words)
	return unsafe.Pointer(&words[0])
}

// hostBytes is the slice of memory at address at that the host filled.
func hostBytes(at, length uint32) []byte {
	if length == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(at))), length)
}

// address is where b starts in linear memory, as the host sees it.
func address(b *byte) uint32 { return uint32(uintptr(unsafe.Pointer(b))) }

// initReturn is init's result<_, string>: a discriminant, then the error's address and length.
var (
	initReturn [3]uint32
	initError  string
)

// The init export: config is a list<tuple<string, string>>, each entry four words (name
// address, name length, value address, value length). The strings are copied, so that the
// configuration outlives this call.
//
//go:wasmexport runnel:plugin/handler@0.2.0#init
func exportInit(config unsafe.Pointer, count uint32) unsafe.Pointer {
	settings := make([]Setting, count)
	if count > 0 {
		for i, entry := range unsafe.Slice((*[4]uint32)(config), count) {
			settings[i] = Setting{
				Name:  string(hostBytes(entry[0], entry[1])),
				Value: string(hostBytes(entry[2], entry[3])),
			}
		}
	}
	received = received[:0]
	initReturn = [3]uint32{}
	if err := initHandler(&Config{settings}); err != nil {
		initError = err.Error()
		initReturn = [3]uint32{1, address(unsafe.StringData(initError)), uint32(len(initError))}
	}
	return unsafe.Pointer(&initReturn)
}

// handleReturn is handle's list<u8>: the answer's address and length. The answer stays in
// outputs, untouched, until the next batch, so nothing needs freeing after the host copied it.
var handleReturn [2]uint32

// The handle export: an encoded batch in, the encoded answer out.
//
//go:wasmexport runnel:plugin/handler@0.2.0#handle
func exportHandle(batch unsafe.Pointer, length uint32) unsafe.Pointer {
	// The slice references the batch's memory from now on, and the handler's views of it
	// keep it alive if they outlive the call.
	bytes := unsafe.Slice((*byte)(batch), length)
	received = received[:0]
	answer := handleBatch(handler, bytes, &outputs)
	handleReturn = [2]uint32{address(unsafe.SliceData(answer)), uint32(len(answer))}
	return unsafe.Pointer(&handleReturn)
}
