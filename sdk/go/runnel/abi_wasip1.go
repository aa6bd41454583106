//go:build wasip1

package runnel

// The canonical-ABI glue of the runnel:plugin world (wit/runnel.wit), written by hand for Go's
// wasip1 port: what wit-bindgen would generate for another language. The host writes each
// call's arguments into memory that cabi_realloc hands out, calls an export, and reads the
// result through the pointer the export returns. Go's collector never moves heap objects, so
// an address handed to the host stays valid while a package variable references the object.
//
// One rule of the component model shapes this file: while the host calls cabi_realloc (and a
// post-return function) the guest must not call any import, or the call traps ("cannot leave
// component instance"). Go's allocator reads the clock, a WASI import, whenever it starts the
// collector or returns memory to the system. So cabi_realloc hands out memory allocated
// earlier, from inside an export, where imports are allowed; and the collector never starts
// itself: the exports run it when it is due.

import (
	"runtime"
	"runtime/debug"
	"unsafe"
)

//go:wasmimport runnel:plugin/log@0.2.0 log
func logImport(level uint32, message string)

func hostLog(level logLevel, message string) { logImport(uint32(level), message) }

// adapterArena is memory for the WASI adapter, which allocates its state while Go's runtime
// is still starting, when no Go function can run: build.sh adds to the module an allocator
// over this array written in plain WebAssembly (see adapterarena/main.go), which finds the
// array by its marker. The marker also keeps the array in the data section, where Go's own
// allocator never hands out memory. Bytes 24..32 hold the allocator's next free address.
var adapterArena = [256 << 10]byte{'r', 'u', 'n', 'n', 'e', 'l', ':', 'a', 'd', 'a', 'p', 't', 'e', 'r', '-', 'a', 'r', 'e', 'n', 'a'}

// adapterArenaAddress is only there so that the linker keeps adapterArena, which no Go code
// uses.
var adapterArenaAddress uintptr

func init() {
	adapterArenaAddress = uintptr(unsafe.Pointer(&adapterArena))
	debug.SetGCPercent(-1)
	runtime.MemProfileRate = 0 // a sampled allocation reads the clock
	inbox = make([]uint64, firstInboxBytes/8)
	overflow = make([][]uint64, 0, 64)
}

// The inbox is where cabi_realloc puts a call's arguments: allocated ahead, reused by every
// call, and grown after a call that filled more than half of it. firstInboxBytes holds a
// batch of a thousand 100-byte messages.
const firstInboxBytes = 256 << 10

var (
	inbox     []uint64 // 8-byte words, aligned for any argument of this world
	inboxUsed int      // bytes handed out during the current call
	// overflow holds arguments that did not fit in the inbox. Allocating them is safe until
	// the collector has first run (before that Go never returns memory to the system), so a
	// fresh instance always gets its arguments; a long-lived one whose batches suddenly grow
	// past twice the inbox may trap, and the host then retries on fresh instances.
	overflow [][]uint64
	// neededBytes is what the current call's arguments took in all.
	neededBytes int
)

//go:wasmexport cabi_realloc
func cabiRealloc(old unsafe.Pointer, oldSize, align, newSize uint32) unsafe.Pointer {
	if newSize == 0 {
		// The canonical ABI never reads through the pointer of an empty list.
		return unsafe.Pointer(uintptr(align))
	}
	at := (inboxUsed + int(align) - 1) &^ (int(align) - 1)
	neededBytes += int(newSize) + int(align)
	var memory unsafe.Pointer
	if at+int(newSize) <= len(inbox)*8 {
		memory = unsafe.Add(unsafe.Pointer(unsafe.SliceData(inbox)), at)
		inboxUsed = at + int(newSize)
	} else {
		words := make([]uint64, (newSize+7)/8)
		overflow = append(overflow, words)
		memory = unsafe.Pointer(unsafe.SliceData(words))
	}
	if old != nil && oldSize > 0 {
		copy(unsafe.Slice((*byte)(memory), newSize), unsafe.Slice((*byte)(old), min(oldSize, newSize)))
	}
	return memory
}

// callDone readies the inbox for the next call, which may overwrite what this one received,
// and runs the collector if it is due. It is called at the end of each export.
func callDone() {
	if neededBytes > len(inbox)*8/2 {
		inbox = make([]uint64, 2*neededBytes/8+1)
	}
	inboxUsed, neededBytes = 0, 0
	clear(overflow)
	overflow = overflow[:0]
	collectIfDue()
}

// collectEvery bounds the garbage between collections: small against the host's default
// memory limit of 64 MiB, and many batches' worth for a handler that allocates little.
const collectEvery = 8 << 20

// checkEvery is how many calls pass between two looks at the heap: a look costs about as
// much as handling a small batch. (runtime/metrics would look more cheaply, but its package
// initialisation alone added a tenth to the instance's start-up.)
const checkEvery = 32

var (
	memStats          runtime.MemStats
	allocatedAtLastGC uint64
	callsSinceCheck   int
)

func collectIfDue() {
	if callsSinceCheck++; callsSinceCheck < checkEvery {
		return
	}
	callsSinceCheck = 0
	runtime.ReadMemStats(&memStats)
	if memStats.TotalAlloc-allocatedAtLastGC >= collectEvery {
		runtime.GC()
		allocatedAtLastGC = memStats.TotalAlloc
	}
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
	initReturn = [3]uint32{}
	if err := initHandler(&Config{settings}); err != nil {
		initError = err.Error()
		initReturn = [3]uint32{1, address(unsafe.StringData(initError)), uint32(len(initError))}
	}
	callDone()
	return unsafe.Pointer(&initReturn)
}

// handleReturn is handle's list<u8>: the answer's address and length. The answer stays in
// outputs, untouched, until the next batch, so nothing needs freeing after the host copied it
// and no post-return function is exported.
var handleReturn [2]uint32

// The handle export: an encoded batch in, the encoded answer out.
//
//go:wasmexport runnel:plugin/handler@0.2.0#handle
func exportHandle(batch unsafe.Pointer, length uint32) unsafe.Pointer {
	answer := handleBatch(handler, unsafe.Slice((*byte)(batch), length), &outputs)
	handleReturn = [2]uint32{address(unsafe.SliceData(answer)), uint32(len(answer))}
	callDone()
	return unsafe.Pointer(&handleReturn)
}
