package protocol

import (
	"math"
	"math/big"
	"unicode/utf8"

	"github.com/lloom/lloom/protocol/pb"
)

// Inference limits (DESIGN §8).
const (
	MaxInferenceRequestSize = 4 << 20 // an InferenceRequest frame
	MaxInferenceFrameSize   = 64 << 10
	// MaxChunkText is the most text one InferenceChunk carries; longer text
	// is split across chunks. It leaves room for the frame's own fields.
	MaxChunkText   = 32 << 10
	RequestIDSize  = 16
	MaxStopStrings = 4
	MaxTemperature = 2.0
)

// Inference error sentinels (codes 6001-6005).
var (
	ErrModelNotServed = &Error{pb.ErrorCode_ERROR_CODE_MODEL_NOT_SERVED, "model not served here"}
	ErrOverloaded     = &Error{pb.ErrorCode_ERROR_CODE_OVERLOADED, "overloaded"}
	ErrBackendFailed  = &Error{pb.ErrorCode_ERROR_CODE_BACKEND_FAILED, "backend failed"}
	ErrInvalidRequest = &Error{pb.ErrorCode_ERROR_CODE_INVALID_REQUEST, "invalid request"}
	ErrPriceTooHigh   = &Error{pb.ErrorCode_ERROR_CODE_PRICE_TOO_HIGH, "price above the client's limits"}
)

func invalid(format string, args ...any) *Error {
	return Errorf(ErrInvalidRequest.Code, format, args...)
}

// CheckInferenceRequest checks what a request says on its own (6004,
// including a price limit that is not a number, and a model id that is not
// one); the checks that need the model's descriptor are
// CheckRequestForModel's.
func CheckInferenceRequest(r *pb.InferenceRequest) error {
	if n := len(r.GetRequestId()); n != RequestIDSize {
		return invalid("request_id of %d bytes, want %d", n, RequestIDSize)
	}
	if !validModelID(r.GetModelId()) {
		return invalid("model_id %q is not a valid model id", truncate(r.GetModelId()))
	}
	chat, prompt := len(r.GetMessages()) > 0, r.GetPrompt() != ""
	switch {
	case chat && prompt:
		return invalid("both messages and prompt are set; send one")
	case !chat && !prompt:
		return invalid("neither messages nor prompt is set")
	}
	for i, m := range r.GetMessages() {
		switch m.GetRole() {
		case "system", "user", "assistant":
		default:
			return invalid("message %d has role %q; want system, user or assistant", i, truncate(m.GetRole()))
		}
	}
	if r.MaxTokens != nil && r.GetMaxTokens() == 0 {
		return invalid("max_tokens is 0")
	}
	if r.Temperature != nil {
		if t := r.GetTemperature(); !(t >= 0 && t <= MaxTemperature) {
			return invalid("temperature %v is outside 0-2", t)
		}
	}
	if r.TopP != nil {
		if p := r.GetTopP(); !(p > 0 && p <= 1) || math.IsNaN(p) {
			return invalid("top_p %v is outside (0, 1]", p)
		}
	}
	if n := len(r.GetStop()); n > MaxStopStrings {
		return invalid("%d stop strings exceed the limit of %d", n, MaxStopStrings)
	}
	for name, v := range map[string]string{
		"max_input_price_wei":  r.GetMaxInputPriceWei(),
		"max_output_price_wei": r.GetMaxOutputPriceWei(),
		"max_fee_wei":          r.GetMaxFeeWei(),
	} {
		if err := CheckPrice(v); err != nil {
			return invalid("%s: %v", name, err.(*Error).Reason)
		}
	}
	return nil
}

// CheckRequestForModel checks a valid request against the descriptor of
// the model it names: max_tokens within the context length (when known),
// and a request kind the model's features allow (6004).
func CheckRequestForModel(r *pb.InferenceRequest, m *pb.ModelDescriptor) error {
	if c := m.GetMaxContextLength(); c > 0 && r.MaxTokens != nil && r.GetMaxTokens() > c {
		return invalid("max_tokens %d exceeds the model's context length of %d", r.GetMaxTokens(), c)
	}
	if len(m.GetFeatures()) == 0 {
		return nil
	}
	want := "completion"
	if len(r.GetMessages()) > 0 {
		want = "chat"
	}
	for _, f := range m.GetFeatures() {
		if f == want {
			return nil
		}
	}
	return invalid("model %q does not offer %s", m.GetModelId(), want)
}

// CheckPriceLimits refuses a request whose limits are below the model's
// prices or minimum fee (6005). The request has passed
// CheckInferenceRequest, so its limits are numbers.
func CheckPriceLimits(r *pb.InferenceRequest, p *pb.Pricing) error {
	for _, c := range []struct{ what, limit, price string }{
		{"input token price", r.GetMaxInputPriceWei(), p.GetInputTokenPriceWei()},
		{"output token price", r.GetMaxOutputPriceWei(), p.GetOutputTokenPriceWei()},
		{"minimum fee", r.GetMaxFeeWei(), p.GetMinimumFeeWei()},
	} {
		if c.limit == "" {
			continue
		}
		if wei(c.price).Cmp(wei(c.limit)) > 0 {
			return Errorf(ErrPriceTooHigh.Code, "%s %s wei is above the limit of %s", c.what, CanonicalWei(c.price), CanonicalWei(c.limit))
		}
	}
	return nil
}

// Fee is max(minimum fee, prompt x input price + completion x output
// price), in canonical decimal wei.
func Fee(promptTokens, completionTokens uint32, inputPrice, outputPrice, minimumFee string) string {
	f := new(big.Int).Mul(big.NewInt(int64(promptTokens)), wei(inputPrice))
	f.Add(f, new(big.Int).Mul(big.NewInt(int64(completionTokens)), wei(outputPrice)))
	if m := wei(minimumFee); m.Cmp(f) > 0 {
		f = m
	}
	return f.String()
}

// CanonicalWei is a wei amount as receipts carry it: digits only, no
// leading zeros, "0" for zero or empty. v has passed CheckPrice.
func CanonicalWei(v string) string { return wei(v).String() }

// wei parses a checked decimal amount; empty (and anything unparsable,
// which CheckPrice has excluded) is zero.
func wei(v string) *big.Int {
	n, ok := new(big.Int).SetString(v, 10)
	if !ok || n.Sign() < 0 {
		return new(big.Int)
	}
	return n
}

// SplitText cuts s into pieces of at most max bytes, never inside a UTF-8
// code point, and none empty.
func SplitText(s string, max int) []string {
	max = maxInt(max, 1)
	var out []string
	for len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		if cut == 0 { // max is smaller than one code point
			_, cut = utf8.DecodeRuneInString(s)
		}
		out = append(out, s[:cut])
		s = s[cut:]
	}
	if s != "" {
		out = append(out, s)
	}
	return out
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}
