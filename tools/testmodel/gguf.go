package testmodel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// GGUF metadata value type tags (gguf_type in ggml's gguf.h).
const (
	ggufTypeUint8   uint32 = 0
	ggufTypeInt8    uint32 = 1
	ggufTypeUint16  uint32 = 2
	ggufTypeInt16   uint32 = 3
	ggufTypeUint32  uint32 = 4
	ggufTypeInt32   uint32 = 5
	ggufTypeFloat32 uint32 = 6
	ggufTypeBool    uint32 = 7
	ggufTypeString  uint32 = 8
	ggufTypeArray   uint32 = 9
	ggufTypeUint64  uint32 = 10
	ggufTypeInt64   uint32 = 11
	ggufTypeFloat64 uint32 = 12
)

// ggmlTypeF32 is GGML_TYPE_F32, the only tensor type this writer emits.
const ggmlTypeF32 uint32 = 0

const (
	ggufMagic   = "GGUF"
	ggufVersion = 3
)

// kv is one metadata key/value pair. value is one of: uint32, int32,
// float32, bool, string, uint64, []string, []float32, []int32.
type kv struct {
	key   string
	value any
}

// tensor is one F32 tensor. dims is in GGUF/ggml "ne" order: dims[0] is
// the fastest-varying (contiguous) dimension.
type tensor struct {
	name string
	dims []uint64
	data []float32
}

func (t tensor) elements() uint64 {
	n := uint64(1)
	for _, d := range t.dims {
		n *= d
	}
	return n
}

// ggufWriter accumulates a little-endian GGUF v3 stream. The first write
// error sticks and is reported by the caller via err.
type ggufWriter struct {
	buf bytes.Buffer
}

func (w *ggufWriter) u32(v uint32) { _ = binary.Write(&w.buf, binary.LittleEndian, v) }
func (w *ggufWriter) u64(v uint64) { _ = binary.Write(&w.buf, binary.LittleEndian, v) }
func (w *ggufWriter) i32(v int32)  { _ = binary.Write(&w.buf, binary.LittleEndian, v) }
func (w *ggufWriter) f32(v float32) {
	_ = binary.Write(&w.buf, binary.LittleEndian, math.Float32bits(v))
}

func (w *ggufWriter) str(s string) {
	w.u64(uint64(len(s)))
	w.buf.WriteString(s)
}

func (w *ggufWriter) value(v any) error {
	switch v := v.(type) {
	case uint32:
		w.u32(ggufTypeUint32)
		w.u32(v)
	case int32:
		w.u32(ggufTypeInt32)
		w.i32(v)
	case uint64:
		w.u32(ggufTypeUint64)
		w.u64(v)
	case float32:
		w.u32(ggufTypeFloat32)
		w.f32(v)
	case bool:
		w.u32(ggufTypeBool)
		if v {
			w.buf.WriteByte(1)
		} else {
			w.buf.WriteByte(0)
		}
	case string:
		w.u32(ggufTypeString)
		w.str(v)
	case []string:
		w.u32(ggufTypeArray)
		w.u32(ggufTypeString)
		w.u64(uint64(len(v)))
		for _, s := range v {
			w.str(s)
		}
	case []float32:
		w.u32(ggufTypeArray)
		w.u32(ggufTypeFloat32)
		w.u64(uint64(len(v)))
		for _, f := range v {
			w.f32(f)
		}
	case []int32:
		w.u32(ggufTypeArray)
		w.u32(ggufTypeInt32)
		w.u64(uint64(len(v)))
		for _, i := range v {
			w.i32(i)
		}
	default:
		return fmt.Errorf("gguf: unsupported metadata value type %T", v)
	}
	return nil
}

func (w *ggufWriter) pad(alignment uint64) {
	for uint64(w.buf.Len())%alignment != 0 {
		w.buf.WriteByte(0)
	}
}

func alignUp(n, alignment uint64) uint64 {
	return (n + alignment - 1) / alignment * alignment
}

// writeGGUF writes a complete GGUF v3 file: header, metadata, tensor
// infos, padding to alignment, then each tensor's data padded to
// alignment. The metadata must contain general.alignment equal to
// alignment when it differs from the default of 32.
func writeGGUF(out io.Writer, kvs []kv, tensors []tensor, alignment uint64) error {
	var w ggufWriter
	w.buf.WriteString(ggufMagic)
	w.u32(ggufVersion)
	w.u64(uint64(len(tensors)))
	w.u64(uint64(len(kvs)))

	seen := make(map[string]bool, len(kvs))
	for _, p := range kvs {
		if seen[p.key] {
			return fmt.Errorf("gguf: duplicate metadata key %q", p.key)
		}
		seen[p.key] = true
		w.str(p.key)
		if err := w.value(p.value); err != nil {
			return fmt.Errorf("%s: %w", p.key, err)
		}
	}

	var offset uint64
	for _, t := range tensors {
		if uint64(len(t.data)) != t.elements() {
			return fmt.Errorf("gguf: tensor %s has %d values, dims %v want %d", t.name, len(t.data), t.dims, t.elements())
		}
		w.str(t.name)
		w.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			w.u64(d)
		}
		w.u32(ggmlTypeF32)
		w.u64(offset)
		offset = alignUp(offset+4*t.elements(), alignment)
	}

	w.pad(alignment)
	for _, t := range tensors {
		for _, f := range t.data {
			w.f32(f)
		}
		w.pad(alignment)
	}

	_, err := out.Write(w.buf.Bytes())
	return err
}
