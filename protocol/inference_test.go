package protocol_test

import (
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// testRequestID is a fixed 16-byte request id.
var testRequestID = []byte("0123456789abcdef")

// validChatRequest is a chat request that passes every check against
// validModel, with every optional field set.
func validChatRequest() *pb.InferenceRequest {
	return &pb.InferenceRequest{
		RequestId: append([]byte(nil), testRequestID...),
		Network:   "lloom-test",
		ModelId:   "llama3.2:3b",
		Messages: []*pb.ChatMessage{
			{Role: "system", Content: "Be brief."},
			{Role: "user", Content: "Hello?"},
			{Role: "assistant", Content: "Hi."},
			{Role: "user", Content: "Bye."},
		},
		MaxTokens:         proto.Uint32(256),
		Temperature:       proto.Float64(0.7),
		TopP:              proto.Float64(0.9),
		Stop:              []string{"\n\n"},
		Seed:              proto.Int64(42),
		MaxInputPriceWei:  "1000000000",
		MaxOutputPriceWei: "2000000000",
		MaxFeeWei:         "0",
		IssuedAtMs:        testIssuedAtMs,
	}
}

// validPromptRequest is the completion form of validChatRequest.
func validPromptRequest() *pb.InferenceRequest {
	r := validChatRequest()
	r.Messages, r.Prompt = nil, "Once upon a time"
	return r
}

func TestCheckInferenceRequest(t *testing.T) {
	digits := func(n int) string { return strings.Repeat("9", n) }
	type edit func(*pb.InferenceRequest)
	tests := []struct {
		name  string
		base  func() *pb.InferenceRequest
		edit  edit
		valid bool
	}{
		{"valid chat", validChatRequest, func(*pb.InferenceRequest) {}, true},
		{"valid prompt", validPromptRequest, func(*pb.InferenceRequest) {}, true},
		{"only the required fields", validPromptRequest, func(r *pb.InferenceRequest) {
			*r = pb.InferenceRequest{RequestId: testRequestID, ModelId: "llama3.2:3b", Prompt: "x"}
		}, true},
		{"issued_at_ms 0 is informational", validChatRequest, func(r *pb.InferenceRequest) { r.IssuedAtMs = 0 }, true},
		{"issued_at_ms negative is informational", validChatRequest, func(r *pb.InferenceRequest) { r.IssuedAtMs = -1 }, true},

		// request_id
		{"request_id absent", validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = nil }, false},
		{"request_id of 0 bytes", validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = []byte{} }, false},
		{"request_id of 15 bytes", validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = r.RequestId[:15] }, false},
		{"request_id of 17 bytes", validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = append(r.RequestId, 'x') }, false},
		{"request_id of 32 bytes", validChatRequest, func(r *pb.InferenceRequest) { r.RequestId = append(r.RequestId, r.RequestId...) }, false},

		// messages or prompt
		{"both messages and prompt", validChatRequest, func(r *pb.InferenceRequest) { r.Prompt = "and a prompt" }, false},
		{"neither messages nor prompt", validChatRequest, func(r *pb.InferenceRequest) { r.Messages = nil }, false},
		{"empty messages list and empty prompt", validChatRequest, func(r *pb.InferenceRequest) { r.Messages = []*pb.ChatMessage{} }, false},
		{"one message", validChatRequest, func(r *pb.InferenceRequest) { r.Messages = r.Messages[1:2] }, true},

		// roles
		{"role tool", validChatRequest, func(r *pb.InferenceRequest) { r.Messages[1].Role = "tool" }, false},
		{"role empty", validChatRequest, func(r *pb.InferenceRequest) { r.Messages[0].Role = "" }, false},
		{"role User (case)", validChatRequest, func(r *pb.InferenceRequest) { r.Messages[1].Role = "User" }, false},
		{"role with a trailing space", validChatRequest, func(r *pb.InferenceRequest) { r.Messages[1].Role = "user " }, false},
		{"bad role in the last message", validChatRequest, func(r *pb.InferenceRequest) { r.Messages[3].Role = "function" }, false},

		// max_tokens
		{"max_tokens present and 0", validChatRequest, func(r *pb.InferenceRequest) { r.MaxTokens = proto.Uint32(0) }, false},
		{"max_tokens absent", validChatRequest, func(r *pb.InferenceRequest) { r.MaxTokens = nil }, true},
		{"max_tokens 1", validChatRequest, func(r *pb.InferenceRequest) { r.MaxTokens = proto.Uint32(1) }, true},
		{"max_tokens MaxUint32 (no descriptor yet)", validChatRequest, func(r *pb.InferenceRequest) { r.MaxTokens = proto.Uint32(math.MaxUint32) }, true},

		// temperature
		{"temperature -0.1", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(-0.1) }, false},
		{"temperature 2.01", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(2.01) }, false},
		{"temperature just above 2", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.Nextafter(2, 3)) }, false},
		{"temperature NaN", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.NaN()) }, false},
		{"temperature +Inf", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.Inf(1)) }, false},
		{"temperature -Inf", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(math.Inf(-1)) }, false},
		{"temperature 0", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(0) }, true},
		{"temperature 2", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = proto.Float64(2) }, true},
		{"temperature absent", validChatRequest, func(r *pb.InferenceRequest) { r.Temperature = nil }, true},

		// top_p
		{"top_p 0", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(0) }, false},
		{"top_p -0.5", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(-0.5) }, false},
		{"top_p 1.01", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(1.01) }, false},
		{"top_p just above 1", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(math.Nextafter(1, 2)) }, false},
		{"top_p NaN", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(math.NaN()) }, false},
		{"top_p +Inf", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(math.Inf(1)) }, false},
		{"top_p 1", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(1) }, true},
		{"top_p smallest positive", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = proto.Float64(math.SmallestNonzeroFloat64) }, true},
		{"top_p absent", validChatRequest, func(r *pb.InferenceRequest) { r.TopP = nil }, true},

		// stop
		{"5 stop strings", validChatRequest, func(r *pb.InferenceRequest) { r.Stop = strs(5, "stop") }, false},
		{"4 stop strings", validChatRequest, func(r *pb.InferenceRequest) { r.Stop = strs(4, "stop") }, true},
		{"no stop strings", validChatRequest, func(r *pb.InferenceRequest) { r.Stop = nil }, true},
	}

	// The three price limits follow one rule: empty (no limit) or a
	// decimal string of at most 78 digits.
	prices := []struct {
		field string
		set   func(*pb.InferenceRequest, string)
	}{
		{"max_input_price_wei", func(r *pb.InferenceRequest, v string) { r.MaxInputPriceWei = v }},
		{"max_output_price_wei", func(r *pb.InferenceRequest, v string) { r.MaxOutputPriceWei = v }},
		{"max_fee_wei", func(r *pb.InferenceRequest, v string) { r.MaxFeeWei = v }},
	}
	for _, p := range prices {
		for _, c := range []struct {
			v     string
			valid bool
		}{
			{"", true},
			{"0", true},
			{"007", true},
			{digits(78), true},
			{digits(79), false},
			{"1" + strings.Repeat("0", 78), false},
			{"1.5", false},
			{"1e18", false},
			{"-1", false},
			{"+1", false},
			{" 1", false},
			{"1 ", false},
			{"0x10", false},
			{"abc", false},
			{"١", false}, // Arabic-Indic digit one
		} {
			set := p.set
			v := c.v
			tests = append(tests, struct {
				name  string
				base  func() *pb.InferenceRequest
				edit  edit
				valid bool
			}{p.field + " " + truncateName(v), validChatRequest, func(r *pb.InferenceRequest) { set(r, v) }, c.valid})
		}
	}

	for _, tc := range tests {
		r := tc.base()
		tc.edit(r)
		err := protocol.CheckInferenceRequest(r)
		switch {
		case tc.valid && err != nil:
			t.Errorf("%s: a valid request is refused: %v", tc.name, err)
		case !tc.valid && err == nil:
			t.Errorf("%s: an invalid request is accepted", tc.name)
		case !tc.valid && !errors.Is(err, protocol.ErrInvalidRequest):
			t.Errorf("%s: refused with %v (code %d), want 6004 invalid request", tc.name, err, code(err))
		}
	}
}

func truncateName(v string) string {
	if len(v) > 12 {
		return v[:6] + "…(" + itoa(len(v)) + " bytes)"
	}
	return "\"" + v + "\""
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCheckRequestForModel(t *testing.T) {
	withModel := func(ctx uint32, features ...string) *pb.ModelDescriptor {
		m := validModel("llama3.2:3b")
		m.MaxContextLength = ctx
		m.Features = features
		return m
	}
	chat, prompt := validChatRequest, validPromptRequest
	maxTokens := func(base func() *pb.InferenceRequest, n *uint32) func() *pb.InferenceRequest {
		return func() *pb.InferenceRequest {
			r := base()
			r.MaxTokens = n
			return r
		}
	}
	for _, tc := range []struct {
		name  string
		req   func() *pb.InferenceRequest
		model *pb.ModelDescriptor
		valid bool
	}{
		{"max_tokens equal to the context length", maxTokens(chat, proto.Uint32(8192)), withModel(8192, "chat"), true},
		{"max_tokens above the context length", maxTokens(chat, proto.Uint32(8193)), withModel(8192, "chat"), false},
		{"prompt with max_tokens above the context length", maxTokens(prompt, proto.Uint32(8193)), withModel(8192), false},
		{"max_tokens MaxUint32, context length unknown", maxTokens(chat, proto.Uint32(math.MaxUint32)), withModel(0, "chat"), true},
		{"max_tokens absent, context length known", maxTokens(chat, nil), withModel(8192, "chat"), true},

		{"chat, features chat+completion", chat, withModel(8192, "chat", "completion"), true},
		{"prompt, features chat+completion", prompt, withModel(8192, "chat", "completion"), true},
		{"chat, features chat only", chat, withModel(8192, "chat"), true},
		{"prompt, features chat only", prompt, withModel(8192, "chat"), false},
		{"prompt, features completion only", prompt, withModel(8192, "completion"), true},
		{"chat, features completion only", chat, withModel(8192, "completion"), false},
		{"chat, features without either", chat, withModel(8192, "embeddings", "vision"), false},
		{"prompt, features without either", prompt, withModel(8192, "embeddings"), false},
		{"chat, chat listed after others", chat, withModel(8192, "vision", "tools", "chat"), true},
		{"chat, empty feature list", chat, withModel(8192), true},
		{"prompt, empty feature list", prompt, withModel(8192), true},
		{"chat, empty non-nil feature list", chat, withModel(8192, []string{}...), true},
	} {
		r := tc.req()
		if err := protocol.CheckInferenceRequest(r); err != nil {
			t.Fatalf("%s: the base request must be valid on its own: %v", tc.name, err)
		}
		err := protocol.CheckRequestForModel(r, tc.model)
		switch {
		case tc.valid && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case !tc.valid && err == nil:
			t.Errorf("%s: accepted, want 6004", tc.name)
		case !tc.valid && !errors.Is(err, protocol.ErrInvalidRequest):
			t.Errorf("%s: refused with %v (code %d), want 6004 invalid request", tc.name, err, code(err))
		}
	}
}

func TestCheckPriceLimits(t *testing.T) {
	ten77 := "1" + strings.Repeat("0", 77) // 78 digits
	nines := func(n int) string { return strings.Repeat("9", n) }
	pricing := func(in, out, min string) *pb.Pricing {
		return &pb.Pricing{InputTokenPriceWei: in, OutputTokenPriceWei: out, MinimumFeeWei: min}
	}
	limits := func(in, out, fee string) *pb.InferenceRequest {
		r := validChatRequest()
		r.MaxInputPriceWei, r.MaxOutputPriceWei, r.MaxFeeWei = in, out, fee
		return r
	}
	std := pricing("100", "200", "1000")
	for _, tc := range []struct {
		name    string
		req     *pb.InferenceRequest
		pricing *pb.Pricing
		ok      bool
	}{
		{"no limits", limits("", "", ""), std, true},
		{"limits equal to the prices", limits("100", "200", "1000"), std, true},
		{"limits above the prices", limits("101", "201", "1001"), std, true},
		{"input limit below the input price", limits("99", "", ""), std, false},
		{"output limit below the output price", limits("", "199", ""), std, false},
		{"fee limit below the minimum fee", limits("", "", "999"), std, false},
		{"fee limit 0 with a minimum fee", limits("", "", "0"), std, false},
		{"only the output limit too low", limits("100", "199", "1000"), std, false},
		{"fee limit is compared with the minimum fee only", limits("100", "200", "1000"), pricing("100", "200", "1000"), true},

		{"empty prices are 0: limits 0", limits("0", "0", "0"), pricing("", "", ""), true},
		{"nil pricing is 0: limits 0", limits("0", "0", "0"), nil, true},
		{"price 0 vs limit 0", limits("0", "0", "0"), pricing("0", "0", "0"), true},
		{"empty input price is 0 but output price 1 above limit 0", limits("0", "0", "0"), pricing("", "1", ""), false},

		{"numeric not lexical: price 10, limit 9", limits("9", "", ""), pricing("10", "", ""), false},
		{"numeric not lexical: price 9, limit 10", limits("10", "", ""), pricing("9", "", ""), true},
		{"numeric not lexical: min 100, fee limit 99", limits("", "", "99"), pricing("", "", "100"), false},
		{"limit with leading zeros below", limits("0099", "", ""), pricing("100", "", ""), false},
		{"limit with leading zeros equal", limits("00100", "", ""), pricing("100", "", ""), true},
		{"price with leading zeros above", limits("99", "", ""), pricing("0000000100", "", ""), false},

		{"78 digits: limit 10^77 - 1 below price 10^77", limits(nines(77), "", ""), pricing(ten77, "", ""), false},
		{"78 digits: limit 10^78 - 1 above price 10^77", limits(nines(78), "", ""), pricing(ten77, "", ""), true},
		{"78 digits: equal", limits("", nines(78), ""), pricing("", nines(78), ""), true},
		{"78 digits: limit one below", limits("", "", nines(77)+"8"), pricing("", "", nines(78)), false},
	} {
		if err := protocol.CheckInferenceRequest(tc.req); err != nil {
			t.Fatalf("%s: limits must be valid numbers: %v", tc.name, err)
		}
		err := protocol.CheckPriceLimits(tc.req, tc.pricing)
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case !tc.ok && err == nil:
			t.Errorf("%s: accepted, want 6005", tc.name)
		case !tc.ok && !errors.Is(err, protocol.ErrPriceTooHigh):
			t.Errorf("%s: refused with %v (code %d), want 6005 price too high", tc.name, err, code(err))
		}
	}
}

var canonicalWei = regexp.MustCompile(`^(0|[1-9][0-9]*)$`)

// bigWei parses a wei string for the tests' own arithmetic; empty is 0.
func bigWei(t testing.TB, v string) *big.Int {
	t.Helper()
	if v == "" {
		return new(big.Int)
	}
	n, ok := new(big.Int).SetString(v, 10)
	if !ok {
		t.Fatalf("bad test value %q", v)
	}
	return n
}

// wantFee is the contract's formula in math/big, independent of Fee.
func wantFee(t testing.TB, p, c uint32, in, out, min string) string {
	f := new(big.Int).Mul(new(big.Int).SetUint64(uint64(p)), bigWei(t, in))
	f.Add(f, new(big.Int).Mul(new(big.Int).SetUint64(uint64(c)), bigWei(t, out)))
	if m := bigWei(t, min); m.Cmp(f) > 0 {
		f = m
	}
	return f.String()
}

func TestFee(t *testing.T) {
	const maxU32 = math.MaxUint32
	ten77 := "1" + strings.Repeat("0", 77)
	nines78 := strings.Repeat("9", 78)
	for _, tc := range []struct {
		name             string
		prompt, complete uint32
		in, out, min     string
		want             string
	}{
		{"all zero", 0, 0, "0", "0", "0", "0"},
		{"all empty", 0, 0, "", "", "", "0"},
		{"tokens at price 0", 1000, 1000, "0", "", "", "0"},
		{"zero tokens pay the minimum", 0, 0, "100", "200", "1000", "1000"},
		{"tokens above the minimum", 3, 5, "100", "200", "1000", "1300"},
		{"minimum above the tokens", 3, 5, "100", "200", "5000", "5000"},
		{"minimum equal to the tokens", 3, 5, "100", "200", "1300", "1300"},
		{"only completion tokens", 0, 7, "100", "200", "", "1400"},
		{"leading zeros in prices", 3, 5, "007", "0011", "00", "76"},
		{"leading zeros in the minimum", 0, 0, "", "", "0010", "10"},
		{"leading zeros all zero", 0, 0, "000", "00", "0000", "0"},
		{"gwei prices", 12, 34, "1000000000", "2000000000", "0", "80000000000"},
		// Hand-derived: (2^32-1) x 10^77 is 4294967295 followed by 77 zeros.
		{"prompt x 78-digit price", maxU32, 0, ten77, "", "", "4294967295" + strings.Repeat("0", 77)},
		{"both x 78-digit prices", maxU32, maxU32, ten77, ten77, "", "8589934590" + strings.Repeat("0", 77)},
		// (2^32-1) x (10^78-1) = 4294967295 x 10^78 - 4294967295.
		{"prompt x largest price", maxU32, 0, nines78, "", "", "4294967294" + strings.Repeat("9", 68) + "5705032705"},
		{"78-digit minimum wins", 1, 1, "1", "1", nines78, nines78},
		{"price 2^64", maxU32, maxU32, "18446744073709551616", "1", "", "79228162495817593524129366015"},
	} {
		got := protocol.Fee(tc.prompt, tc.complete, tc.in, tc.out, tc.min)
		if got != tc.want {
			t.Errorf("%s: Fee(%d, %d, %q, %q, %q) = %s, want %s", tc.name, tc.prompt, tc.complete, tc.in, tc.out, tc.min, got, tc.want)
		}
		if ind := wantFee(t, tc.prompt, tc.complete, tc.in, tc.out, tc.min); ind != tc.want {
			t.Errorf("%s: the test's literal %s disagrees with math/big's %s", tc.name, tc.want, ind)
		}
	}

	// A grid of values against the independent formula.
	tokens := []uint32{0, 1, 2, 1000, 1 << 31, maxU32}
	amounts := []string{"", "0", "1", "0042", "999999999999999999999", ten77, nines78}
	for _, p := range tokens {
		for _, c := range tokens {
			for _, in := range amounts {
				for _, out := range amounts {
					for _, min := range []string{"", "5", nines78} {
						got := protocol.Fee(p, c, in, out, min)
						if want := wantFee(t, p, c, in, out, min); got != want {
							t.Fatalf("Fee(%d, %d, %q, %q, %q) = %s, want %s", p, c, in, out, min, got, want)
						}
						if !canonicalWei.MatchString(got) {
							t.Fatalf("Fee(%d, %d, %q, %q, %q) = %q is not canonical decimal", p, c, in, out, min, got)
						}
					}
				}
			}
		}
	}
}

func TestCanonicalWei(t *testing.T) {
	for in, want := range map[string]string{
		"":     "0",
		"0":    "0",
		"000":  "0",
		"7":    "7",
		"007":  "7",
		"1000": "1000",
		"0001000000000000000000000000000000000000000000000000000000000000000000000000000": "1" + strings.Repeat("0", 75),
		strings.Repeat("9", 78): strings.Repeat("9", 78),
	} {
		if got := protocol.CanonicalWei(in); got != want {
			t.Errorf("CanonicalWei(%q) = %q, want %q", in, got, want)
		}
	}
}

// checkPieces holds SplitText's contract for s and max and returns a
// description of the first breach, or "".
func checkPieces(s string, max int, pieces []string) string {
	if s == "" && len(pieces) != 0 {
		return "empty input gave pieces"
	}
	if got := strings.Join(pieces, ""); got != s {
		return "pieces joined give " + quote(got)
	}
	// Boundaries of s's code points (an invalid byte counts as one), the
	// only places a cut may fall.
	cuts := map[int]bool{0: true}
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		i += n
		cuts[i] = true
	}
	at := 0
	for i, p := range pieces {
		if p == "" {
			return "piece " + itoa(i) + " is empty"
		}
		at += len(p)
		if !cuts[at] {
			return "piece " + itoa(i) + " " + quote(p) + " ends inside a code point"
		}
		if len(p) > max {
			if _, n := utf8.DecodeRuneInString(p); n != len(p) {
				return "piece " + itoa(i) + " " + quote(p) + " exceeds max and is more than one code point"
			}
		}
		// Pieces of valid text are as long as max allows: the next code
		// point did not fit. (Stray continuation bytes may cut earlier.)
		if i+1 < len(pieces) && utf8.ValidString(s) {
			_, next := utf8.DecodeRuneInString(pieces[i+1])
			if len(p)+next <= max {
				return "piece " + itoa(i) + " " + quote(p) + " stops short: the next code point fits"
			}
		}
	}
	return ""
}

func quote(s string) string { return strconv.Quote(s) }

func TestSplitText(t *testing.T) {
	inputs := []string{
		"héllo wörld 日本語 🎉",
		"🎉🎉🎉",
		"日本語",
		"abc",
		"e\u0301e\u0301", // combining accents: separate code points
		"a\x80\x80\x80b", // invalid UTF-8 still splits and joins back
		"\xff\xfe\xfd",
		"\xe6\x97", // a truncated 3-byte sequence
		strings.Repeat("x", 100),
	}
	for _, s := range inputs {
		for max := 0; max <= 24; max++ {
			pieces := protocol.SplitText(s, max)
			if msg := checkPieces(s, max, pieces); msg != "" {
				t.Errorf("SplitText(%s, %d) = %q: %s", quote(s), max, pieces, msg)
			}
			if utf8.ValidString(s) {
				for _, p := range pieces {
					if !utf8.ValidString(p) {
						t.Errorf("SplitText(%s, %d): piece %q is not valid UTF-8", quote(s), max, p)
					}
				}
			}
		}
	}

	for _, tc := range []struct {
		s    string
		max  int
		want []string
	}{
		{"", 1, nil},
		{"", 100, nil},
		{"héllo", 2, []string{"h", "é", "ll", "o"}},
		{"héllo", 3, []string{"hé", "llo"}},
		{"日本語", 4, []string{"日", "本", "語"}},
		{"日本語", 6, []string{"日本", "語"}},
		{"日本語", 9, []string{"日本語"}},
		{"🎉", 1, []string{"🎉"}}, // one code point larger than max
		{"🎉", 3, []string{"🎉"}},
		{"a🎉b", 2, []string{"a", "🎉", "b"}},
		{"abcdefg", 3, []string{"abc", "def", "g"}},
	} {
		got := protocol.SplitText(tc.s, tc.max)
		if len(got) != len(tc.want) {
			t.Errorf("SplitText(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("SplitText(%q, %d) = %q, want %q", tc.s, tc.max, got, tc.want)
				break
			}
		}
	}

	// An answer of 100,000 bytes of three-byte code points fits in chunks
	// of MaxChunkText.
	long := strings.Repeat("語", 100_000/3+1)
	pieces := protocol.SplitText(long, protocol.MaxChunkText)
	if msg := checkPieces(long, protocol.MaxChunkText, pieces); msg != "" {
		t.Fatalf("SplitText of a long answer: %s", msg)
	}
	per := protocol.MaxChunkText / 3 * 3 // whole code points per chunk
	if want := (len(long) + per - 1) / per; len(pieces) != want {
		t.Errorf("a %d-byte answer is split into %d chunks, want %d", len(long), len(pieces), want)
	}
}

// The inference codes are the contract's numbers, each the sentinel of its
// own code (errors_test.go's list predates them).
func TestInferenceSentinelCodes(t *testing.T) {
	for want, s := range map[int32]*protocol.Error{
		6001: protocol.ErrModelNotServed,
		6002: protocol.ErrOverloaded,
		6003: protocol.ErrBackendFailed,
		6004: protocol.ErrInvalidRequest,
		6005: protocol.ErrPriceTooHigh,
	} {
		if int32(s.Code) != want {
			t.Errorf("sentinel %q has code %d, want %d", s.Reason, s.Code, want)
		}
		if got := protocol.ErrorFromResponse(s.Code, "x"); !errors.Is(got, s) {
			t.Errorf("a response with code %d does not map back to %q", want, s.Reason)
		}
	}
}
