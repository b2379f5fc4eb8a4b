// Package testmodel generates a tiny, deterministic GGUF v3 "llama" model
// for integration tests that need a real inference engine (Ollama,
// llama.cpp) without downloading any weights.
//
// The model has random weights, so its output is gibberish words, but it is
// a structurally valid llama model with a SentencePiece ("llama")
// tokenizer, byte-fallback tokens and a ChatML chat template that Ollama
// recognises. The same seed always yields byte-identical output.
//
// Two properties are engineered into the weights so that tests are
// predictable:
//
//   - The model never samples an end-of-generation token (</s>,
//     <|im_end|>), a control token or a byte token: embedding dimension 0
//     is a constant "bias" channel that no layer writes to, and the output
//     rows of those tokens carry a large negative weight on it. A
//     generation therefore always runs until max_tokens (finish_reason
//     "length"); without max_tokens it runs until DefaultNumPredict, which
//     CreateRequest sets as a model parameter.
//   - Generated text is made only of the word pieces in the vocabulary,
//     so it is always valid UTF-8 and looks like words.
package testmodel

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
)

// Model hyper-parameters, as written to the GGUF metadata.
const (
	Architecture       = "llama"
	Name               = "lloom-test-tiny"
	ContextLength      = 2048
	EmbeddingLength    = 64
	BlockCount         = 2
	FeedForwardLength  = 192
	HeadCount          = 4
	HeadCountKV        = 2
	HeadDim            = EmbeddingLength / HeadCount
	RopeDimensionCount = HeadDim
	RopeFreqBase       = 10000.0
	RMSNormEpsilon     = 1e-5
	Alignment          = 32
)

// Special token ids.
const (
	UnknownTokenID  = 0 // <unk>
	BOSTokenID      = 1 // <s>
	EOSTokenID      = 2 // </s>
	firstByteToken  = 3 // <0x00> .. <0xFF> are ids 3..258
	IMStartTokenID  = 259
	IMEndTokenID    = 260
	firstNormalText = 261
)

// ChatTemplate is the tokenizer.chat_template written to the model. It is
// byte-for-byte one of the "chatml" Jinja templates Ollama v0.6.5 knows
// (template/index.json), so Ollama's create step replaces it with its own
// Go template chatml.gotmpl and adds the stop parameters
// ["<|im_start|>", "<|im_end|>"].
const ChatTemplate = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

// Defaults used by CreateRequest.
const (
	// DefaultModelName is the Ollama model name tests and scripts create.
	DefaultModelName = "lloom-test:tiny"
	// DefaultSeed is the generator seed tests and scripts use.
	DefaultSeed = 1
	// DefaultNumPredict bounds a generation that sets no max_tokens: the
	// model never emits an end token by itself.
	DefaultNumPredict = 256
	// NumThread is the runner thread count. One thread is much faster than
	// two for a model this small (thread synchronisation dominates).
	NumThread = 1
	// GGUFFileName is the file name used in the /api/create "files" map.
	GGUFFileName = "model.gguf"
)

// Token types (llama_token_type in llama.cpp).
const (
	tokenTypeNormal  int32 = 1
	tokenTypeUnknown int32 = 2
	tokenTypeControl int32 = 3
	tokenTypeByte    int32 = 6
)

// suppressWeight is the output weight on the constant channel for tokens
// the model must never generate. The normalised constant channel is about
// 1, while ordinary logits are a few units, so this removes them from any
// sampler's reach (probability ~e^-40).
const suppressWeight = -40

// words are the SentencePiece word pieces of the vocabulary; each gets the
// "▁" (U+2581) word-start prefix.
var words = strings.Fields(`
the of and to in is was for that on with as by at from his it an were are
which be this or had not but first one their its new after who they have
her she two been other when there all during into school time may years
more most only over city some world would where later up such used many
can state about national out known university united then made under
team year back game high long part good great small large light water
river stone house field road north south east west king queen music song
film book story word name place people child family friend home night day
morning evening summer winter spring autumn garden forest mountain island
ocean sky star moon sun cloud rain snow wind fire earth iron gold silver
green blue red white black bright dark quiet loud soft warm cold fast slow
open close begin end walk run read write sing dance build grow carry bring
find keep leave meet think know see hear speak tell ask call turn move
live hold stand sit fall rise give take make come go look feel seem try
help show play work learn teach change follow stop start paper window door
table chair letter number question answer reason idea point fact case
system program market power money voice color shape line circle square
simple strong young old little every each both few own same different
early late near far always never often still again once here today
tomorrow together because while until before above below between through
against without within around across along toward lloom node peer network
`)

// pieces are sub-word continuations (no word-start prefix).
var pieces = strings.Fields(`ing ed er s es ly tion al ment ness able est ful less ous ive ize y`)

// Vocab returns the model's token strings, scores and types, in id order.
func Vocab() (tokens []string, scores []float32, types []int32) {
	add := func(tok string, score float32, typ int32) {
		tokens = append(tokens, tok)
		scores = append(scores, score)
		types = append(types, typ)
	}
	add("<unk>", 0, tokenTypeUnknown)
	add("<s>", 0, tokenTypeControl)
	add("</s>", 0, tokenTypeControl)
	for b := 0; b < 256; b++ {
		add(fmt.Sprintf("<0x%02X>", b), 0, tokenTypeByte)
	}
	add("<|im_start|>", 0, tokenTypeControl)
	add("<|im_end|>", 0, tokenTypeControl)

	// Ordinary text pieces. SentencePiece merges prefer higher scores, so
	// scores decrease with the id like a real unigram model's log-probs.
	score := float32(-1)
	next := func(tok string) {
		add(tok, score, tokenTypeNormal)
		score -= 0.01
	}
	next("\u2581")
	for c := 'a'; c <= 'z'; c++ {
		next(string(c))
		next("\u2581" + string(c))
	}
	for _, p := range []string{",", ".", "!", "?", "'", "-", ":"} {
		next(p)
	}
	for _, w := range words {
		next("\u2581" + w)
	}
	for _, p := range pieces {
		if p == "s" || p == "y" { // already present as single letters
			continue
		}
		next(p)
	}
	return tokens, scores, types
}

// VocabSize is the number of tokens in the vocabulary.
var VocabSize = func() int { t, _, _ := Vocab(); return len(t) }()

// generatable reports whether the model may sample the token: whole words
// and multi-letter word pieces only (no lone "▁", letters or punctuation).
func generatable(tok string, typ int32) bool {
	return typ == tokenTypeNormal && len([]rune(strings.TrimPrefix(tok, "\u2581"))) > 1
}

// Generate writes the model for seed to w. The output depends only on seed.
func Generate(w io.Writer, seed int64) error {
	tokens, scores, types := Vocab()
	nVocab := uint64(len(tokens))

	rng := rand.New(rand.NewPCG(uint64(seed), 0x6c6c6f6f6d2d746d)) // "lloom-tm"
	normal := func(n uint64, std float64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = float32(rng.NormFloat64() * std)
		}
		return out
	}
	ones := func(n uint64) []float32 {
		out := make([]float32, n)
		for i := range out {
			out[i] = 1
		}
		return out
	}
	// zeroRow0 clears output row 0 (the constant channel) of a matrix with
	// rowLen columns, so the layer never writes to that channel.
	zeroRow0 := func(m []float32, rowLen uint64) []float32 {
		clear(m[:rowLen])
		return m
	}

	const (
		nEmbd = uint64(EmbeddingLength)
		nFF   = uint64(FeedForwardLength)
		nQ    = uint64(HeadDim * HeadCount)
		nKV   = uint64(HeadDim * HeadCountKV)
	)

	// Token embeddings: channel 0 is a constant 1, the others random.
	embd := normal(nEmbd*nVocab, 1)
	for v := uint64(0); v < nVocab; v++ {
		embd[v*nEmbd] = 1
	}
	tensors := []tensor{{name: "token_embd.weight", dims: []uint64{nEmbd, nVocab}, data: embd}}

	for i := 0; i < BlockCount; i++ {
		blk := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", i, s) }
		inStd := 1 / math.Sqrt(float64(nEmbd))
		tensors = append(tensors,
			tensor{blk("attn_norm"), []uint64{nEmbd}, ones(nEmbd)},
			tensor{blk("attn_q"), []uint64{nEmbd, nQ}, normal(nEmbd*nQ, inStd)},
			tensor{blk("attn_k"), []uint64{nEmbd, nKV}, normal(nEmbd*nKV, inStd)},
			tensor{blk("attn_v"), []uint64{nEmbd, nKV}, normal(nEmbd*nKV, inStd)},
			tensor{blk("attn_output"), []uint64{nQ, nEmbd}, zeroRow0(normal(nQ*nEmbd, 1/math.Sqrt(float64(nQ))), nQ)},
			tensor{blk("ffn_norm"), []uint64{nEmbd}, ones(nEmbd)},
			tensor{blk("ffn_gate"), []uint64{nEmbd, nFF}, normal(nEmbd*nFF, inStd)},
			tensor{blk("ffn_up"), []uint64{nEmbd, nFF}, normal(nEmbd*nFF, inStd)},
			tensor{blk("ffn_down"), []uint64{nFF, nEmbd}, zeroRow0(normal(nFF*nEmbd, 1/math.Sqrt(float64(nFF))), nFF)},
		)
	}

	// Output projection: one row of nEmbd per token. Generatable tokens get
	// random rows with nothing on the constant channel; all others get a
	// large negative weight there and nothing elsewhere.
	out := normal(nEmbd*nVocab, 0.4)
	for v := uint64(0); v < nVocab; v++ {
		row := out[v*nEmbd : (v+1)*nEmbd]
		if generatable(tokens[v], types[v]) {
			row[0] = 0
		} else {
			clear(row)
			row[0] = suppressWeight
		}
	}
	tensors = append(tensors,
		tensor{"output_norm.weight", []uint64{nEmbd}, ones(nEmbd)},
		tensor{"output.weight", []uint64{nEmbd, nVocab}, out},
	)

	kvs := []kv{
		{"general.architecture", Architecture},
		{"general.name", Name},
		{"general.alignment", uint32(Alignment)},
		{"general.file_type", uint32(0)}, // LLAMA_FTYPE_ALL_F32
		{"llama.context_length", uint32(ContextLength)},
		{"llama.embedding_length", uint32(EmbeddingLength)},
		{"llama.block_count", uint32(BlockCount)},
		{"llama.feed_forward_length", uint32(FeedForwardLength)},
		{"llama.attention.head_count", uint32(HeadCount)},
		{"llama.attention.head_count_kv", uint32(HeadCountKV)},
		{"llama.rope.dimension_count", uint32(RopeDimensionCount)},
		{"llama.rope.freq_base", float32(RopeFreqBase)},
		{"llama.attention.layer_norm_rms_epsilon", float32(RMSNormEpsilon)},
		{"llama.vocab_size", uint32(nVocab)},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", tokens},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.bos_token_id", uint32(BOSTokenID)},
		{"tokenizer.ggml.eos_token_id", uint32(EOSTokenID)},
		{"tokenizer.ggml.unknown_token_id", uint32(UnknownTokenID)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.ggml.add_eos_token", false},
		{"tokenizer.chat_template", ChatTemplate},
	}
	return writeGGUF(w, kvs, tensors, Alignment)
}

// CreateRequest returns the JSON body for Ollama's POST /api/create that
// creates model name from the GGUF blob with the given digest
// ("sha256:<hex>", already uploaded with POST /api/blobs/<digest>).
//
// The shape is Ollama v0.6.5's api.CreateRequest:
//
//	{"model": name, "files": {"model.gguf": digest}, "stream": false,
//	 "parameters": {"num_thread": 1, "num_predict": 256}}
func CreateRequest(name, digest string) ([]byte, error) {
	stream := false
	return json.Marshal(struct {
		Model      string            `json:"model"`
		Files      map[string]string `json:"files"`
		Stream     *bool             `json:"stream"`
		Parameters map[string]any    `json:"parameters"`
	}{
		Model:  name,
		Files:  map[string]string{GGUFFileName: digest},
		Stream: &stream,
		Parameters: map[string]any{
			"num_thread":  NumThread,
			"num_predict": DefaultNumPredict,
		},
	})
}
