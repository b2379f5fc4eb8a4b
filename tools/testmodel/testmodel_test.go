package testmodel

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
)

// ggufFile is what the test reader extracts from a GGUF stream.
type ggufFile struct {
	version    uint32
	kv         map[string]any
	keys       []string
	tensors    []tensorInfo
	dataOffset uint64 // absolute offset of the tensor data section
	raw        []byte
}

type tensorInfo struct {
	name   string
	dims   []uint64
	typ    uint32
	offset uint64 // relative to dataOffset
}

// reader is a minimal GGUF v3 reader, independent of the writer.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || r.pos+n > len(r.b) {
		r.err = fmt.Errorf("truncated at %d reading %d bytes", r.pos, n)
		return nil
	}
	out := r.b[r.pos : r.pos+n]
	r.pos += n
	return out
}

func (r *reader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.take(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (r *reader) str() string { return string(r.take(int(r.u64()))) }

func (r *reader) scalar(typ uint32) any {
	switch typ {
	case ggufTypeUint8:
		return r.u8()
	case ggufTypeInt8:
		return int8(r.u8())
	case ggufTypeUint16:
		return binary.LittleEndian.Uint16(r.take(2))
	case ggufTypeInt16:
		return int16(binary.LittleEndian.Uint16(r.take(2)))
	case ggufTypeUint32:
		return r.u32()
	case ggufTypeInt32:
		return int32(r.u32())
	case ggufTypeFloat32:
		return math.Float32frombits(r.u32())
	case ggufTypeBool:
		return r.u8() != 0
	case ggufTypeString:
		return r.str()
	case ggufTypeUint64:
		return r.u64()
	case ggufTypeInt64:
		return int64(r.u64())
	case ggufTypeFloat64:
		return math.Float64frombits(r.u64())
	}
	r.err = fmt.Errorf("unknown type %d at %d", typ, r.pos)
	return nil
}

func (r *reader) value(typ uint32) any {
	if typ != ggufTypeArray {
		return r.scalar(typ)
	}
	elem, n := r.u32(), r.u64()
	if elem == ggufTypeArray {
		r.err = errors.New("nested arrays are not expected")
		return nil
	}
	out := make([]any, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		out = append(out, r.scalar(elem))
	}
	return out
}

func parseGGUF(b []byte) (*ggufFile, error) {
	r := &reader{b: b}
	if string(r.take(4)) != "GGUF" {
		return nil, errors.New("bad magic")
	}
	f := &ggufFile{version: r.u32(), kv: map[string]any{}, raw: b}
	nTensors, nKV := r.u64(), r.u64()
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		k := r.str()
		f.keys = append(f.keys, k)
		f.kv[k] = r.value(r.u32())
	}
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		t := tensorInfo{name: r.str()}
		nd := r.u32()
		for d := uint32(0); d < nd; d++ {
			t.dims = append(t.dims, r.u64())
		}
		t.typ = r.u32()
		t.offset = r.u64()
		f.tensors = append(f.tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	align := uint64(32)
	if a, ok := f.kv["general.alignment"].(uint32); ok {
		align = uint64(a)
	}
	f.dataOffset = alignUp(uint64(r.pos), align)
	for _, pad := range b[r.pos:f.dataOffset] {
		if pad != 0 {
			return nil, errors.New("non-zero header padding")
		}
	}
	return f, nil
}

func (f *ggufFile) tensor(name string) ([]float32, tensorInfo, bool) {
	for _, t := range f.tensors {
		if t.name != name {
			continue
		}
		n := uint64(1)
		for _, d := range t.dims {
			n *= d
		}
		start := f.dataOffset + t.offset
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(f.raw[start+4*uint64(i):]))
		}
		return out, t, true
	}
	return nil, tensorInfo{}, false
}

func generate(t *testing.T, seed int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Generate(&buf, seed); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDeterministic(t *testing.T) {
	a, b := sha256.Sum256(generate(t, 1)), sha256.Sum256(generate(t, 1))
	if a != b {
		t.Fatalf("same seed, different files: %x vs %x", a, b)
	}
	c := sha256.Sum256(generate(t, 2))
	if a == c {
		t.Fatal("seeds 1 and 2 produced identical files")
	}
}

func TestSize(t *testing.T) {
	n := len(generate(t, DefaultSeed))
	if n < 256<<10 || n > 2<<20 {
		t.Fatalf("model is %d bytes, want roughly 1 MB", n)
	}
	t.Logf("model size %d bytes, vocab %d", n, VocabSize)
}

func TestHeaderAndMetadata(t *testing.T) {
	f, err := parseGGUF(generate(t, DefaultSeed))
	if err != nil {
		t.Fatal(err)
	}
	if f.version != 3 {
		t.Fatalf("version %d", f.version)
	}
	want := map[string]any{
		"general.architecture":                   "llama",
		"general.name":                           Name,
		"general.alignment":                      uint32(32),
		"llama.context_length":                   uint32(ContextLength),
		"llama.embedding_length":                 uint32(EmbeddingLength),
		"llama.block_count":                      uint32(BlockCount),
		"llama.feed_forward_length":              uint32(FeedForwardLength),
		"llama.attention.head_count":             uint32(HeadCount),
		"llama.attention.head_count_kv":          uint32(HeadCountKV),
		"llama.rope.dimension_count":             uint32(RopeDimensionCount),
		"llama.attention.layer_norm_rms_epsilon": float32(RMSNormEpsilon),
		"llama.vocab_size":                       uint32(VocabSize),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.bos_token_id":            uint32(BOSTokenID),
		"tokenizer.ggml.eos_token_id":            uint32(EOSTokenID),
		"tokenizer.chat_template":                ChatTemplate,
	}
	for k, v := range want {
		if got := f.kv[k]; got != v {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if f.keys[0] != "general.architecture" {
		t.Errorf("first key %q, want general.architecture", f.keys[0])
	}

	tokens, _ := f.kv["tokenizer.ggml.tokens"].([]any)
	scores, _ := f.kv["tokenizer.ggml.scores"].([]any)
	types, _ := f.kv["tokenizer.ggml.token_type"].([]any)
	if len(tokens) != VocabSize || len(scores) != VocabSize || len(types) != VocabSize {
		t.Fatalf("vocab arrays %d/%d/%d, want %d", len(tokens), len(scores), len(types), VocabSize)
	}
	seen := map[string]int{}
	for i, tok := range tokens {
		s := tok.(string)
		if s == "" {
			t.Errorf("empty token %d", i)
		}
		if j, dup := seen[s]; dup {
			t.Errorf("token %q at %d and %d (llama.cpp asserts tokens are unique)", s, j, i)
		}
		seen[s] = i
	}
	check := map[int]struct {
		tok string
		typ int32
	}{
		UnknownTokenID: {"<unk>", tokenTypeUnknown},
		BOSTokenID:     {"<s>", tokenTypeControl},
		EOSTokenID:     {"</s>", tokenTypeControl},
		3:              {"<0x00>", tokenTypeByte},
		3 + 0x0A:       {"<0x0A>", tokenTypeByte},
		258:            {"<0xFF>", tokenTypeByte},
		IMStartTokenID: {"<|im_start|>", tokenTypeControl},
		IMEndTokenID:   {"<|im_end|>", tokenTypeControl},
	}
	for id, w := range check {
		if tokens[id] != w.tok || types[id] != w.typ {
			t.Errorf("token %d = %q type %v, want %q type %d", id, tokens[id], types[id], w.tok, w.typ)
		}
	}
	if _, ok := seen["\u2581the"]; !ok {
		t.Error("no SentencePiece word piece ▁the")
	}
}

func TestTensors(t *testing.T) {
	f, err := parseGGUF(generate(t, DefaultSeed))
	if err != nil {
		t.Fatal(err)
	}
	e, v, ff := uint64(EmbeddingLength), uint64(VocabSize), uint64(FeedForwardLength)
	q, kvd := uint64(HeadDim*HeadCount), uint64(HeadDim*HeadCountKV)
	want := map[string][]uint64{
		"token_embd.weight":  {e, v},
		"output_norm.weight": {e},
		"output.weight":      {e, v},
	}
	for i := 0; i < BlockCount; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		want[p+"attn_norm.weight"] = []uint64{e}
		want[p+"attn_q.weight"] = []uint64{e, q}
		want[p+"attn_k.weight"] = []uint64{e, kvd}
		want[p+"attn_v.weight"] = []uint64{e, kvd}
		want[p+"attn_output.weight"] = []uint64{q, e}
		want[p+"ffn_norm.weight"] = []uint64{e}
		want[p+"ffn_gate.weight"] = []uint64{e, ff}
		want[p+"ffn_up.weight"] = []uint64{e, ff}
		want[p+"ffn_down.weight"] = []uint64{ff, e}
	}
	if len(f.tensors) != len(want) {
		t.Errorf("%d tensors, want %d", len(f.tensors), len(want))
	}

	if f.dataOffset%Alignment != 0 {
		t.Errorf("data section at %d, not aligned", f.dataOffset)
	}
	var next uint64
	for _, ti := range f.tensors {
		if fmt.Sprint(ti.dims) != fmt.Sprint(want[ti.name]) {
			t.Errorf("%s dims %v, want %v", ti.name, ti.dims, want[ti.name])
		}
		if ti.typ != ggmlTypeF32 {
			t.Errorf("%s type %d", ti.name, ti.typ)
		}
		if ti.offset%Alignment != 0 {
			t.Errorf("%s offset %d not aligned", ti.name, ti.offset)
		}
		if ti.offset != next {
			t.Errorf("%s offset %d, want %d (tensors packed in order)", ti.name, ti.offset, next)
		}
		n := uint64(4)
		for _, d := range ti.dims {
			n *= d
		}
		next = alignUp(ti.offset+n, Alignment)
	}
	if got := uint64(len(f.raw)); got != f.dataOffset+next {
		t.Errorf("file is %d bytes, want header %d + data %d", got, f.dataOffset, next)
	}

	for _, name := range []string{"output_norm.weight", "blk.0.attn_norm.weight", "blk.0.ffn_norm.weight"} {
		w, _, _ := f.tensor(name)
		for i, x := range w {
			if x != 1 {
				t.Fatalf("%s[%d] = %v, want 1", name, i, x)
			}
		}
	}
	for _, name := range []string{"blk.1.attn_q.weight", "blk.1.ffn_up.weight"} {
		w, _, _ := f.tensor(name)
		var sq float64
		for _, x := range w {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("%s has %v", name, x)
			}
			sq += float64(x) * float64(x)
		}
		if sq == 0 {
			t.Errorf("%s is all zero", name)
		}
	}
}

// TestSuppressedTokens checks the weight construction that keeps the model
// from ever emitting end, control or byte tokens.
func TestSuppressedTokens(t *testing.T) {
	f, err := parseGGUF(generate(t, DefaultSeed))
	if err != nil {
		t.Fatal(err)
	}
	tokens, _, types := Vocab()
	embd, _, _ := f.tensor("token_embd.weight")
	out, _, _ := f.tensor("output.weight")
	e := EmbeddingLength
	for id := range tokens {
		if embd[id*e] != 1 {
			t.Fatalf("embedding %d channel 0 = %v, want 1", id, embd[id*e])
		}
		gen := generatable(tokens[id], types[id])
		if gen && out[id*e] != 0 || !gen && out[id*e] != suppressWeight {
			t.Errorf("output row %d (%q) channel 0 = %v", id, tokens[id], out[id*e])
		}
	}
	for _, id := range []int{UnknownTokenID, BOSTokenID, EOSTokenID, IMStartTokenID, IMEndTokenID, 3 + 'a'} {
		if generatable(tokens[id], types[id]) {
			t.Errorf("token %d %q is generatable", id, tokens[id])
		}
	}
	for i := 0; i < BlockCount; i++ {
		for _, name := range []string{"attn_output", "ffn_down"} {
			w, ti, _ := f.tensor(fmt.Sprintf("blk.%d.%s.weight", i, name))
			for _, x := range w[:ti.dims[0]] {
				if x != 0 {
					t.Fatalf("blk.%d.%s writes to channel 0", i, name)
				}
			}
		}
	}
}

func TestCreateRequest(t *testing.T) {
	b, err := CreateRequest("lloom-test:tiny", "sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["model"] != "lloom-test:tiny" || got["stream"] != false {
		t.Errorf("request %s", b)
	}
	if files := got["files"].(map[string]any); files[GGUFFileName] != "sha256:abc" {
		t.Errorf("files %v", files)
	}
	if p := got["parameters"].(map[string]any); p["num_thread"] != float64(1) || p["num_predict"] != float64(DefaultNumPredict) {
		t.Errorf("parameters %v", p)
	}
	if !strings.Contains(string(b), `"files":{"model.gguf":"sha256:abc"}`) {
		t.Errorf("request %s", b)
	}
}
