package protocol_test

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

var (
	decimalLimit  = regexp.MustCompile(`^[0-9]{0,78}$`)
	modelIDSyntax = regexp.MustCompile(`^[A-Za-z0-9._:/@-]{1,128}$`)
)

// FuzzInferenceRequest decodes arbitrary bytes as an InferenceRequest, as
// an executor does with a request frame. CheckInferenceRequest never
// panics, refuses only with 6004, and whatever it accepts holds every
// guarantee of DESIGN §8 that the later steps rely on.
func FuzzInferenceRequest(f *testing.F) {
	enc := func(r *pb.InferenceRequest) []byte { return marshalDetTB(f, r) }
	edited := func(base func() *pb.InferenceRequest, edit func(*pb.InferenceRequest)) []byte {
		r := base()
		edit(r)
		return enc(r)
	}
	f.Add(enc(validChatRequest()))
	f.Add(enc(validPromptRequest()))
	f.Add(enc(&pb.InferenceRequest{RequestId: testRequestID, ModelId: "m", Prompt: "x"}))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.Prompt = "both" }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.Messages[0].Role = "tool" }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.NaN()) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(0) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(math.NaN()) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.TopP, r.Temperature = proto.Float64(1), proto.Float64(2) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.Inf(1)) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.MaxTokens = proto.Uint32(0) }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.Stop = strs(5, "s") }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.MaxFeeWei = "1e18" }))
	f.Add(edited(validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = append(r.RequestId, 0) }))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0xff})

	models := []*pb.ModelDescriptor{
		{ModelId: "m", MaxContextLength: 0},
		{ModelId: "m", MaxContextLength: 4096, Features: []string{"chat"}},
		{ModelId: "m", MaxContextLength: 1, Features: []string{"completion"}},
	}
	pricings := []*pb.Pricing{
		nil,
		{InputTokenPriceWei: "1000000000", OutputTokenPriceWei: "2000000000", MinimumFeeWei: "5"},
		{InputTokenPriceWei: strings.Repeat("9", 78), OutputTokenPriceWei: "", MinimumFeeWei: "0010"},
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		var r pb.InferenceRequest
		if err := proto.Unmarshal(data, &r); err != nil {
			return
		}
		err := protocol.CheckInferenceRequest(&r)
		if want := refRequestProblem(&r); (err == nil) != (want == "") {
			t.Fatalf("CheckInferenceRequest(%v) = %v, but the contract says %q", &r, err, want)
		}
		if err != nil {
			if !errors.Is(err, protocol.ErrInvalidRequest) {
				t.Fatalf("refused with %v (code %d), want 6004", err, code(err))
			}
			return
		}

		// Accepted: what the rest of the executor relies on.
		if len(r.GetRequestId()) != 16 {
			t.Fatalf("accepted a request_id of %d bytes", len(r.GetRequestId()))
		}
		if (len(r.GetMessages()) > 0) == (r.GetPrompt() != "") {
			t.Fatalf("accepted %d messages with prompt %q: want exactly one", len(r.GetMessages()), r.GetPrompt())
		}
		for _, m := range r.GetMessages() {
			if role := m.GetRole(); role != "system" && role != "user" && role != "assistant" {
				t.Fatalf("accepted role %q", role)
			}
		}
		if r.MaxTokens != nil && r.GetMaxTokens() == 0 {
			t.Fatalf("accepted max_tokens 0")
		}
		if r.Temperature != nil && !(r.GetTemperature() >= 0 && r.GetTemperature() <= 2) {
			t.Fatalf("accepted temperature %v", r.GetTemperature())
		}
		if r.TopP != nil && !(r.GetTopP() > 0 && r.GetTopP() <= 1) {
			t.Fatalf("accepted top_p %v", r.GetTopP())
		}
		if len(r.GetStop()) > 4 {
			t.Fatalf("accepted %d stop strings", len(r.GetStop()))
		}
		for _, v := range []string{r.GetMaxInputPriceWei(), r.GetMaxOutputPriceWei(), r.GetMaxFeeWei()} {
			if !decimalLimit.MatchString(v) {
				t.Fatalf("accepted price limit %q", v)
			}
		}

		for _, m := range models {
			err := protocol.CheckRequestForModel(&r, m)
			want := refModelProblem(&r, m)
			if (err == nil) != (want == "") {
				t.Fatalf("CheckRequestForModel(%v, %v) = %v, but the contract says %q", &r, m, err, want)
			}
			if err != nil && !errors.Is(err, protocol.ErrInvalidRequest) {
				t.Fatalf("CheckRequestForModel refused with %v (code %d), want 6004", err, code(err))
			}
		}
		for _, p := range pricings {
			err := protocol.CheckPriceLimits(&r, p)
			above := bigAbove(t, p.GetInputTokenPriceWei(), r.GetMaxInputPriceWei()) ||
				bigAbove(t, p.GetOutputTokenPriceWei(), r.GetMaxOutputPriceWei()) ||
				bigAbove(t, p.GetMinimumFeeWei(), r.GetMaxFeeWei())
			if (err != nil) != above {
				t.Fatalf("CheckPriceLimits(limits %q %q %q, pricing %v) = %v, want refused: %v",
					r.GetMaxInputPriceWei(), r.GetMaxOutputPriceWei(), r.GetMaxFeeWei(), p, err, above)
			}
			if err != nil && !errors.Is(err, protocol.ErrPriceTooHigh) {
				t.Fatalf("CheckPriceLimits refused with %v (code %d), want 6005", err, code(err))
			}
			// The limits are valid amounts too: Fee takes them.
			fee := protocol.Fee(math.MaxUint32, 7, r.GetMaxInputPriceWei(), r.GetMaxOutputPriceWei(), r.GetMaxFeeWei())
			if want := wantFee(t, math.MaxUint32, 7, r.GetMaxInputPriceWei(), r.GetMaxOutputPriceWei(), r.GetMaxFeeWei()); fee != want {
				t.Fatalf("Fee of the limits = %s, want %s", fee, want)
			}
		}
	})
}

// refRequestProblem is DESIGN §8's list of 6004 rules for a request on its
// own, written apart from CheckInferenceRequest; "" when none applies.
// (The implementation also wants a well-formed model_id, §3's syntax.)
func refRequestProblem(r *pb.InferenceRequest) string {
	switch {
	case len(r.RequestId) != 16:
		return "request_id"
	case !modelIDSyntax.MatchString(r.ModelId):
		return "model_id"
	case (len(r.Messages) > 0) == (r.Prompt != ""):
		return "messages or prompt"
	}
	for _, m := range r.Messages {
		switch m.GetRole() {
		case "system", "user", "assistant":
		default:
			return "role"
		}
	}
	switch {
	case r.MaxTokens != nil && *r.MaxTokens == 0:
		return "max_tokens"
	case r.Temperature != nil && (math.IsNaN(*r.Temperature) || *r.Temperature < 0 || *r.Temperature > 2):
		return "temperature"
	case r.TopP != nil && (math.IsNaN(*r.TopP) || *r.TopP <= 0 || *r.TopP > 1):
		return "top_p"
	case len(r.Stop) > 4:
		return "stop"
	}
	for _, v := range []string{r.MaxInputPriceWei, r.MaxOutputPriceWei, r.MaxFeeWei} {
		if !decimalLimit.MatchString(v) {
			return "price limit"
		}
	}
	return ""
}

// refModelProblem is DESIGN §8's 6004 rules that need the descriptor.
func refModelProblem(r *pb.InferenceRequest, m *pb.ModelDescriptor) string {
	if c := m.GetMaxContextLength(); c != 0 && r.MaxTokens != nil && *r.MaxTokens > c {
		return "max_tokens above the context length"
	}
	if len(m.GetFeatures()) == 0 {
		return ""
	}
	want := "completion"
	if len(r.Messages) > 0 {
		want = "chat"
	}
	for _, f := range m.GetFeatures() {
		if f == want {
			return ""
		}
	}
	return "features lack " + want
}

// bigAbove reports whether price exceeds a non-empty limit.
func bigAbove(t *testing.T, price, limit string) bool {
	if limit == "" {
		return false
	}
	return bigWei(t, price).Cmp(bigWei(t, limit)) > 0
}

// FuzzVerifyReceipt feeds mutations of a valid receipt envelope to
// VerifyReceipt. It never panics, refuses only with ErrMalformed or
// ErrInvalidSignature, and whatever it accepts is the receipt the executor
// signed, agreeing with the client's claim: without the executor's key a
// mutation can change only bytes the signature does not cover.
func FuzzVerifyReceipt(f *testing.F) {
	p := newReceiptParties(f)
	signed := p.validReceipt()
	raw := sealReceipt(f, signed, p.execKey)
	claim := p.claim()

	f.Add(raw)
	f.Add(raw[:len(raw)-1])
	f.Add(append(bytes.Clone(raw), 0x22, 0x00)) // an unknown field 4 appended
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 1
	f.Add(flipped)
	forged := &protocol.ReceiptRecord{}
	proto.Merge(&forged.Receipt, signed)
	f.Add(sealForeign(f, forged, p.otherKey))
	f.Add(sealAnnouncement(f, validAnnouncement(f, p.exec), p.execKey))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		input := bytes.Clone(data)
		c := claim
		c.RequestID = bytes.Clone(claim.RequestID)
		v, err := protocol.VerifyReceipt(data, c)
		if !bytes.Equal(data, input) {
			t.Fatalf("VerifyReceipt changed its input")
		}
		if err != nil {
			if v != nil {
				t.Fatalf("VerifyReceipt returned both a receipt and %v", err)
			}
			if !errors.Is(err, protocol.ErrMalformed) && !errors.Is(err, protocol.ErrInvalidSignature) {
				t.Fatalf("refused with %v (code %d), want ErrMalformed or ErrInvalidSignature", err, code(err))
			}
			return
		}
		got := v.Receipt
		switch {
		case string(got.GetExecutorId()) != string(claim.Executor):
			t.Fatalf("accepted a receipt of executor %x, called %s", got.GetExecutorId(), claim.Executor)
		case string(got.GetClientId()) != string(claim.Client):
			t.Fatalf("accepted a receipt for client %x", got.GetClientId())
		case !bytes.Equal(got.GetRequestId(), claim.RequestID):
			t.Fatalf("accepted a receipt for request %x", got.GetRequestId())
		case got.GetModelId() != claim.ModelID:
			t.Fatalf("accepted a receipt for model %q", got.GetModelId())
		case !bytes.Equal(got.GetOutputSha256(), sha256Of(claim.Text)):
			t.Fatalf("accepted a receipt with digest %x", got.GetOutputSha256())
		case !proto.Equal(got, signed):
			t.Fatalf("accepted a receipt the executor did not sign: %v", got)
		case !bytes.Equal(v.Raw, data):
			t.Fatalf("VerifiedReceipt.Raw is not the input")
		}
		if !canonicalWei.MatchString(got.GetFeeWei()) || got.GetFeeWei() != wantFee(t, got.GetPromptTokens(), got.GetCompletionTokens(),
			got.GetInputTokenPriceWei(), got.GetOutputTokenPriceWei(), got.GetMinimumFeeWei()) {
			t.Fatalf("accepted fee_wei %q", got.GetFeeWei())
		}
	})
}

// FuzzSplitText holds SplitText's contract (checkPieces) for any text and
// chunk size, including invalid UTF-8.
func FuzzSplitText(f *testing.F) {
	f.Add("héllo wörld 日本語 🎉", uint8(3))
	f.Add("🎉", uint8(1))
	f.Add("", uint8(0))
	f.Add("a\x80\x80\x80b", uint8(2))
	f.Add(strings.Repeat("語", 40), uint8(8))
	f.Fuzz(func(t *testing.T, s string, max uint8) {
		pieces := protocol.SplitText(s, int(max))
		if msg := checkPieces(s, int(max), pieces); msg != "" {
			t.Fatalf("SplitText(%q, %d) = %q: %s", s, max, pieces, msg)
		}
	})
}
