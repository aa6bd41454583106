// Command adapterarena gives the WASI adapter of a Go plugin memory of its own.
//
//	go run runnelsdk/adapterarena CORE.wasm OUT.wasm
//
// The WASI preview 1 adapter that turns a core module into a component allocates its state
// the first time Go calls into WASI, which happens while Go's runtime is still starting. It
// allocates through the main module's cabi_realloc_adapter export if there is one, else
// through cabi_realloc: a Go function, which cannot run at that point (the call recurses until
// the stack is exhausted). Growing the memory instead would hand the adapter pages that Go's
// allocator also believes it owns, since Go grows memory from where it last stopped.
//
// So the SDK reserves an array in Go's data (runnel.adapterArena, which starts with a marker)
// and this command adds to the module a cabi_realloc_adapter written in plain WebAssembly: a
// bump allocator over that array, which runs without Go's runtime.
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// arenaMarker starts runnel.adapterArena in abi_wasip1.go; arenaSize is its length.
var arenaMarker = []byte("runnel:adapter-arena")

const arenaSize = 256 << 10

// The arena holds the marker, then the next free address (0 before the first allocation),
// then the memory handed out.
const (
	nextAt  = 24 // keep in step with abi_wasip1.go
	firstAt = 32
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: adapterarena CORE.wasm OUT.wasm")
		os.Exit(2)
	}
	module, err := os.ReadFile(os.Args[1])
	if err == nil {
		module, err = addAdapterRealloc(module)
	}
	if err == nil {
		err = os.WriteFile(os.Args[2], module, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "adapterarena:", err)
		os.Exit(1)
	}
}

type section struct {
	id   byte
	body []byte
}

func addAdapterRealloc(module []byte) ([]byte, error) {
	if len(module) < 8 || !bytes.Equal(module[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly module")
	}
	var sections []section
	for rest := module[8:]; len(rest) > 0; {
		id := rest[0]
		size, n := uleb(rest[1:])
		start := 1 + n
		if start+int(size) > len(rest) {
			return nil, errors.New("truncated section")
		}
		sections = append(sections, section{id, rest[start : start+int(size)]})
		rest = rest[start+int(size):]
	}
	find := func(id byte) *section {
		for i := range sections {
			if sections[i].id == id {
				return &sections[i]
			}
		}
		return nil
	}
	types, imports, functions, exports, code, data := find(1), find(2), find(3), find(7), find(10), find(11)
	if types == nil || functions == nil || exports == nil || code == nil || data == nil {
		return nil, errors.New("the module lacks a section a Go reactor has")
	}
	arena, err := arenaAddress(data.body)
	if err != nil {
		return nil, err
	}
	typeIndex, err := reallocType(types.body)
	if err != nil {
		return nil, err
	}
	functionIndex := functionImports(imports) + count(functions.body)

	functions.body = appendItem(functions.body, uleb128(uint64(typeIndex)))
	export := append(name("cabi_realloc_adapter"), 0x00)
	exports.body = appendItem(exports.body, append(export, uleb128(uint64(functionIndex))...))
	body := reallocBody(arena)
	code.body = appendItem(code.body, append(uleb128(uint64(len(body))), body...))

	out := append([]byte(nil), module[:8]...)
	for _, s := range sections {
		out = append(out, s.id)
		out = append(out, uleb128(uint64(len(s.body)))...)
		out = append(out, s.body...)
	}
	return out, nil
}

// arenaAddress finds the marker in the active data segments and returns its address.
func arenaAddress(data []byte) (uint32, error) {
	segments, n := uleb(data)
	rest := data[n:]
	for range segments {
		flags, n := uleb(rest)
		rest = rest[n:]
		if flags != 0 || len(rest) == 0 || rest[0] != 0x41 { // active, memory 0, i32.const
			return 0, errors.New("unexpected data segment form")
		}
		offset, n := sleb(rest[1:])
		rest = rest[1+n:]
		if len(rest) == 0 || rest[0] != 0x0b {
			return 0, errors.New("unexpected data segment offset")
		}
		size, n := uleb(rest[1:])
		contents := rest[1+n : 1+n+int(size)]
		rest = rest[1+n+int(size):]
		if at := bytes.Index(contents, arenaMarker); at >= 0 {
			return uint32(offset) + uint32(at), nil
		}
	}
	return 0, errors.New("runnel.adapterArena is missing: is the plugin built with the Runnel Go SDK?")
}

// reallocType finds the type (i32, i32, i32, i32) -> i32, which cabi_realloc already uses.
func reallocType(types []byte) (int, error) {
	want := []byte{0x60, 4, 0x7f, 0x7f, 0x7f, 0x7f, 1, 0x7f}
	n, at := uleb(types)
	for i := range int(n) {
		if bytes.HasPrefix(types[at:], want) {
			return i, nil
		}
		params, m := uleb(types[at+1:])
		at += 1 + m + int(params)
		results, m := uleb(types[at:])
		at += m + int(results)
	}
	return 0, errors.New("no function of cabi_realloc's type: is cabi_realloc exported?")
}

func functionImports(imports *section) int {
	if imports == nil {
		return 0
	}
	functions := 0
	n, at := uleb(imports.body)
	body := imports.body
	for range n {
		for range 2 { // module and field names
			length, m := uleb(body[at:])
			at += m + int(length)
		}
		kind := body[at]
		at++
		switch kind {
		case 0x00: // function: type index
			_, m := uleb(body[at:])
			at += m
			functions++
		case 0x01: // table: element type and limits
			at++
			at += limitsLen(body[at:])
		case 0x02: // memory: limits
			at += limitsLen(body[at:])
		case 0x03: // global: value type and mutability
			at += 2
		}
	}
	return functions
}

func limitsLen(b []byte) int {
	_, n := uleb(b[1:])
	length := 1 + n
	if b[0]&1 == 1 {
		_, m := uleb(b[length:])
		length += m
	}
	return length
}

// reallocBody is cabi_realloc_adapter(old, old_size, align, size): the next free address
// aligned to align, or a trap when the arena is used up. The adapter only ever allocates.
func reallocBody(arena uint32) []byte {
	next := arena + nextAt
	end := arena + arenaSize
	b := []byte{1, 1, 0x7f} // one local, $at: i32 (local 4)
	i32 := func(v uint32) { b = append(append(b, 0x41), sleb128(int64(int32(v)))...) }
	i32(next)
	b = append(b, 0x28, 2, 0) // i32.load align=4
	b = append(b, 0x22, 4)    // local.tee $at
	b = append(b, 0x45, 0x04, 0x40)
	i32(arena + firstAt)
	b = append(b, 0x21, 4, 0x0b) // local.set $at; end
	// $at = ($at + align - 1) & -align
	b = append(b, 0x20, 4, 0x20, 2, 0x6a)
	i32(1)
	b = append(b, 0x6b)
	i32(0)
	b = append(b, 0x20, 2, 0x6b, 0x71, 0x21, 4)
	// if $at + size > end: trap
	b = append(b, 0x20, 4, 0x20, 3, 0x6a)
	i32(end)
	b = append(b, 0x4b, 0x04, 0x40, 0x00, 0x0b)
	// next = $at + size; return $at
	i32(next)
	b = append(b, 0x20, 4, 0x20, 3, 0x6a, 0x36, 2, 0)
	b = append(b, 0x20, 4, 0x0b)
	return b
}

func count(vec []byte) int {
	n, _ := uleb(vec)
	return int(n)
}

// appendItem adds an item to a section that is a vector: its count goes up by one.
func appendItem(vec, item []byte) []byte {
	n, at := uleb(vec)
	out := uleb128(n + 1)
	out = append(out, vec[at:]...)
	return append(out, item...)
}

func name(s string) []byte { return append(uleb128(uint64(len(s))), s...) }

func uleb(b []byte) (uint64, int) {
	value, n := binary.Uvarint(b)
	return value, n
}

func uleb128(v uint64) []byte { return binary.AppendUvarint(nil, v) }

func sleb(b []byte) (int64, int) {
	var value int64
	var shift uint
	for i, c := range b {
		value |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				value |= -1 << shift
			}
			return value, i + 1
		}
	}
	return 0, len(b)
}

func sleb128(v int64) []byte {
	var out []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && c&0x40 == 0) || (v == -1 && c&0x40 != 0) {
			return append(out, c)
		}
		out = append(out, c|0x80)
	}
}
