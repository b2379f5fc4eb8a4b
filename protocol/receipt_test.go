package protocol_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

const (
	testAnswer = "héllo wörld 日本語 🎉"
	testModel  = "llama3.2:3b"
)

// receiptParties are the executor (who signs), the client it answered and
// a third peer.
type receiptParties struct {
	execKey  crypto.PrivKey
	exec     peer.ID
	client   peer.ID
	otherKey crypto.PrivKey
	other    peer.ID
}

func newReceiptParties(tb testing.TB) receiptParties {
	tb.Helper()
	execKey, exec := testKey(tb, 11)
	_, client := testKey(tb, 12)
	otherKey, other := testKey(tb, 13)
	return receiptParties{execKey, exec, client, otherKey, other}
}

// sha256Of is the digest computed here, not through OutputDigest.
func sha256Of(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
}

// validReceipt is the receipt of testAnswer: 12 prompt tokens at 1 gwei
// and 34 completion tokens at 2 gwei, so 80 gwei.
func (p receiptParties) validReceipt() *pb.Receipt {
	return &pb.Receipt{
		RequestId:           append([]byte(nil), testRequestID...),
		ExecutorId:          []byte(p.exec),
		ClientId:            []byte(p.client),
		ModelId:             testModel,
		PromptTokens:        12,
		CompletionTokens:    34,
		InputTokenPriceWei:  "1000000000",
		OutputTokenPriceWei: "2000000000",
		MinimumFeeWei:       "0",
		FeeWei:              "80000000000",
		StartedAtMs:         testIssuedAtMs,
		FinishedAtMs:        testIssuedAtMs + 1500,
		OutputSha256:        sha256Of(testAnswer),
		FinishReason:        "stop",
	}
}

func (p receiptParties) claim() protocol.ReceiptClaim {
	return protocol.ReceiptClaim{
		Executor:  p.exec,
		Client:    p.client,
		RequestID: append([]byte(nil), testRequestID...),
		ModelID:   testModel,
		Text:      testAnswer,
	}
}

func sealReceipt(tb testing.TB, r *pb.Receipt, key crypto.PrivKey) []byte {
	tb.Helper()
	raw, err := protocol.SealReceipt(r, key)
	if err != nil {
		tb.Fatalf("SealReceipt: %v", err)
	}
	return raw
}

func TestReceiptRoundTrip(t *testing.T) {
	p := newReceiptParties(t)
	r := p.validReceipt()
	raw := sealReceipt(t, r, p.execKey)
	v, err := protocol.VerifyReceipt(raw, p.claim())
	if err != nil {
		t.Fatalf("a receipt sealed by the executor called is refused: %v", err)
	}
	if !proto.Equal(v.Receipt, r) {
		t.Errorf("VerifyReceipt returned %v, sealed %v", v.Receipt, r)
	}
	if !bytes.Equal(v.Raw, raw) {
		t.Errorf("VerifiedReceipt.Raw is not the envelope verified")
	}
	if s := v.String(); !strings.Contains(s, "80000000000") || !strings.Contains(s, hex.EncodeToString(testRequestID)) {
		t.Errorf("VerifiedReceipt.String() = %q, want the request id and the fee", s)
	}

	// The model check is optional on the client's side.
	c := p.claim()
	c.ModelID = ""
	if _, err := protocol.VerifyReceipt(raw, c); err != nil {
		t.Errorf("a claim without a model is refused: %v", err)
	}
}

func TestReceiptForAnEmptyAnswer(t *testing.T) {
	p := newReceiptParties(t)
	r := p.validReceipt()
	r.OutputSha256 = sha256Of("")
	c := p.claim()
	c.Text = ""
	if _, err := protocol.VerifyReceipt(sealReceipt(t, r, p.execKey), c); err != nil {
		t.Fatalf("a receipt for no text, with the empty string's digest, is refused: %v", err)
	}
	r.OutputSha256 = nil // not the empty string's digest
	_, err := protocol.VerifyReceipt(sealReceipt(t, r, p.execKey), c)
	if !errors.Is(err, protocol.ErrMalformed) {
		t.Errorf("a receipt with no output_sha256 gives %v, want ErrMalformed", err)
	}
}

func TestReceiptWithBigFee(t *testing.T) {
	p := newReceiptParties(t)
	r := p.validReceipt()
	// (2^32-1) x 10^68 twice: a 78-digit fee, far beyond 2^64.
	r.PromptTokens, r.CompletionTokens = 1<<32-1, 1<<32-1
	r.InputTokenPriceWei = "1" + strings.Repeat("0", 68)
	r.OutputTokenPriceWei = r.InputTokenPriceWei
	r.MinimumFeeWei = "1"
	r.FeeWei = "8589934590" + strings.Repeat("0", 68)
	if want := wantFee(t, r.PromptTokens, r.CompletionTokens, r.InputTokenPriceWei, r.OutputTokenPriceWei, r.MinimumFeeWei); r.FeeWei != want {
		t.Fatalf("test fee %s, math/big says %s", r.FeeWei, want)
	}
	if _, err := protocol.VerifyReceipt(sealReceipt(t, r, p.execKey), p.claim()); err != nil {
		t.Fatalf("a receipt with a 78-digit fee is refused: %v", err)
	}
}

// Prices of up to 78 digits times up to 2^32-1 tokens make fees of up to 88
// digits, which Fee computes and an executor seals; DESIGN §8 sets no length
// limit on fee_wei, only canonical decimal.
func TestReceiptWithFeeAbove78Digits(t *testing.T) {
	p := newReceiptParties(t)
	r := p.validReceipt()
	r.PromptTokens, r.CompletionTokens = 1<<32-1, 1<<32-1
	r.InputTokenPriceWei = strings.Repeat("9", 78)
	r.OutputTokenPriceWei = "1" + strings.Repeat("0", 77)
	r.MinimumFeeWei = strings.Repeat("9", 78)
	r.FeeWei = protocol.Fee(r.PromptTokens, r.CompletionTokens, r.InputTokenPriceWei, r.OutputTokenPriceWei, r.MinimumFeeWei)
	if _, err := protocol.VerifyReceipt(sealReceipt(t, r, p.execKey), p.claim()); err != nil {
		t.Fatalf("a receipt with a %d-digit fee is refused: %v", len(r.FeeWei), err)
	}
}

func TestOutputDigest(t *testing.T) {
	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := hex.EncodeToString(protocol.OutputDigest("")); got != emptySHA256 {
		t.Errorf("OutputDigest(\"\") = %s, want %s", got, emptySHA256)
	}
	if got := protocol.OutputDigest(testAnswer); !bytes.Equal(got, sha256Of(testAnswer)) || len(got) != 32 {
		t.Errorf("OutputDigest(%q) = %x, want the raw 32-byte SHA-256 %x", testAnswer, got, sha256Of(testAnswer))
	}
}

func TestSealReceiptWithAnotherKeyFails(t *testing.T) {
	p := newReceiptParties(t)
	if _, err := protocol.SealReceipt(p.validReceipt(), p.otherKey); err == nil {
		t.Fatal("SealReceipt signed a receipt whose executor_id is another peer's")
	}
}

func TestSealReceiptDoesNotChangeItsInput(t *testing.T) {
	p := newReceiptParties(t)
	r := p.validReceipt()
	sealReceipt(t, r, p.execKey)
	if !proto.Equal(r, p.validReceipt()) {
		t.Errorf("SealReceipt changed the receipt it was given: %v", r)
	}
}

func TestVerifyReceiptRefuses(t *testing.T) {
	p := newReceiptParties(t)
	valid := sealReceipt(t, p.validReceipt(), p.execKey)
	resealed := func(edit func(*pb.Receipt)) []byte {
		r := p.validReceipt()
		edit(r)
		return sealReceipt(t, r, p.execKey)
	}
	// A receipt claiming to be the executor's, signed by another peer:
	// SealReceipt refuses to make one, record.Seal does not.
	forged := &protocol.ReceiptRecord{}
	proto.Merge(&forged.Receipt, p.validReceipt())
	impersonation := sealForeign(t, forged, p.otherKey)

	wrongDomain := sealForeign(t, &foreignRecord{protocol.AnnouncementDomain, protocol.ReceiptPayloadType,
		marshalDetTB(t, p.validReceipt())}, p.execKey)
	announcement := sealAnnouncement(t, validAnnouncement(t, p.exec), p.execKey)
	heartbeat := sealHeartbeat(t, validHeartbeat(p.exec), p.execKey)

	type claimEdit func(*protocol.ReceiptClaim)
	same := func(*protocol.ReceiptClaim) {}
	for _, tc := range []struct {
		name  string
		raw   []byte
		claim claimEdit
		want  *protocol.Error
	}{
		{"another executor expected", valid, func(c *protocol.ReceiptClaim) { c.Executor = p.other }, protocol.ErrMalformed},
		{"no executor expected", valid, func(c *protocol.ReceiptClaim) { c.Executor = "" }, protocol.ErrMalformed},
		{"signed by a key other than executor_id's", impersonation, same, protocol.ErrInvalidSignature},
		{"signed by another key, which the client called", impersonation, func(c *protocol.ReceiptClaim) { c.Executor = p.other }, protocol.ErrInvalidSignature},
		{"wrong domain", wrongDomain, same, protocol.ErrInvalidSignature},

		{"made out to another client", valid, func(c *protocol.ReceiptClaim) { c.Client = p.other }, protocol.ErrMalformed},
		{"made out to the executor itself", valid, func(c *protocol.ReceiptClaim) { c.Client = p.exec }, protocol.ErrMalformed},
		{"receipt without a client", resealed(func(r *pb.Receipt) { r.ClientId = nil }), same, protocol.ErrMalformed},

		{"another request_id", valid, func(c *protocol.ReceiptClaim) { c.RequestID[15] ^= 1 }, protocol.ErrMalformed},
		{"request_id truncated", valid, func(c *protocol.ReceiptClaim) { c.RequestID = c.RequestID[:15] }, protocol.ErrMalformed},
		{"no request_id claimed", valid, func(c *protocol.ReceiptClaim) { c.RequestID = nil }, protocol.ErrMalformed},

		{"another model", valid, func(c *protocol.ReceiptClaim) { c.ModelID = "mistral:7b-instruct" }, protocol.ErrMalformed},

		{"text with one byte different", valid, func(c *protocol.ReceiptClaim) { c.Text = "h" + "è" + c.Text[len("hé"):] }, protocol.ErrMalformed},
		{"text with its last byte changed", valid, func(c *protocol.ReceiptClaim) {
			b := []byte(c.Text)
			b[len(b)-1] ^= 1
			c.Text = string(b)
		}, protocol.ErrMalformed},
		{"text truncated", valid, func(c *protocol.ReceiptClaim) { c.Text = c.Text[:len(c.Text)-len("🎉")] }, protocol.ErrMalformed},
		{"extra text", valid, func(c *protocol.ReceiptClaim) { c.Text += "!" }, protocol.ErrMalformed},
		{"no text received", valid, func(c *protocol.ReceiptClaim) { c.Text = "" }, protocol.ErrMalformed},

		{"fee_wei one wei above its fields", resealed(func(r *pb.Receipt) { r.FeeWei = "80000000001" }), same, protocol.ErrMalformed},
		{"fee_wei one wei below its fields", resealed(func(r *pb.Receipt) { r.FeeWei = "79999999999" }), same, protocol.ErrMalformed},
		{"fee_wei below the minimum fee", resealed(func(r *pb.Receipt) { r.MinimumFeeWei = "100000000000" }), same, protocol.ErrMalformed},
		{"fee_wei is the minimum while tokens cost more", resealed(func(r *pb.Receipt) { r.MinimumFeeWei, r.FeeWei = "1", "1" }), same, protocol.ErrMalformed},
		{"fee_wei counts tokens the usage does not", resealed(func(r *pb.Receipt) { r.CompletionTokens = 33 }), same, protocol.ErrMalformed},

		// Each of these is numerically consistent, so only the form is wrong.
		{"fee_wei with a leading zero", resealed(func(r *pb.Receipt) { r.FeeWei = "080000000000" }), same, protocol.ErrMalformed},
		{"input price 01000000000", resealed(func(r *pb.Receipt) { r.InputTokenPriceWei = "01000000000" }), same, protocol.ErrMalformed},
		{"output price with a leading zero", resealed(func(r *pb.Receipt) { r.OutputTokenPriceWei = "02000000000" }), same, protocol.ErrMalformed},
		{"minimum fee 00", resealed(func(r *pb.Receipt) { r.MinimumFeeWei = "00" }), same, protocol.ErrMalformed},
		{"minimum fee empty", resealed(func(r *pb.Receipt) { r.MinimumFeeWei = "" }), same, protocol.ErrMalformed},
		{"minimum fee 1e3", resealed(func(r *pb.Receipt) { r.MinimumFeeWei = "1e3" }), same, protocol.ErrMalformed},
		{"input price 1e9", resealed(func(r *pb.Receipt) { r.InputTokenPriceWei = "1e9" }), same, protocol.ErrMalformed},
		{"fee_wei empty for a zero fee", resealed(func(r *pb.Receipt) {
			r.PromptTokens, r.CompletionTokens, r.FeeWei = 0, 0, ""
		}), same, protocol.ErrMalformed},
		{"fee_wei -0", resealed(func(r *pb.Receipt) { r.PromptTokens, r.CompletionTokens, r.FeeWei = 0, 0, "-0" }), same, protocol.ErrMalformed},
		{"79-digit minimum fee", resealed(func(r *pb.Receipt) {
			r.MinimumFeeWei = "1" + strings.Repeat("0", 78)
			r.FeeWei = r.MinimumFeeWei
		}), same, protocol.ErrMalformed},

		{"an announcement envelope", announcement, same, protocol.ErrMalformed},
		{"a heartbeat envelope", heartbeat, same, protocol.ErrMalformed},
		{"truncated envelope", valid[:len(valid)-1], same, nil},
		{"half an envelope", valid[:len(valid)/2], same, nil},
		{"empty", []byte{}, same, protocol.ErrMalformed},
		{"garbage", []byte("not an envelope"), same, protocol.ErrMalformed},
	} {
		c := p.claim()
		tc.claim(&c)
		v, err := protocol.VerifyReceipt(tc.raw, c)
		switch {
		case err == nil:
			t.Errorf("%s: receipt accepted: %v", tc.name, v)
		case v != nil:
			t.Errorf("%s: VerifyReceipt returned both a receipt and %v", tc.name, err)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: refused with %v (code %d), want %v", tc.name, err, code(err), tc.want)
		case !errors.Is(err, protocol.ErrMalformed) && !errors.Is(err, protocol.ErrInvalidSignature):
			t.Errorf("%s: refused with %v (code %d), want ErrMalformed or ErrInvalidSignature", tc.name, err, code(err))
		}
	}
}

// Every byte of a receipt envelope is covered: flip any bit pattern at any
// position and the receipt is refused, without a panic.
func TestVerifyReceiptFlippedBytes(t *testing.T) {
	p := newReceiptParties(t)
	raw := sealReceipt(t, p.validReceipt(), p.execKey)
	for i := range raw {
		for _, mask := range []byte{0x01, 0x02, 0x10, 0x80, 0xff} {
			b := bytes.Clone(raw)
			b[i] ^= mask
			v, err := protocol.VerifyReceipt(b, p.claim())
			if err == nil {
				t.Errorf("byte %d of %d ^ %#02x: receipt still verifies: %v", i, len(raw), mask, v)
				continue
			}
			if !errors.Is(err, protocol.ErrMalformed) && !errors.Is(err, protocol.ErrInvalidSignature) {
				t.Errorf("byte %d ^ %#02x: refused with %v (code %d), want ErrMalformed or ErrInvalidSignature", i, mask, err, code(err))
			}
		}
	}
}

// go-libp2p's generic record code opens lloom receipts, and lloom opens
// receipts sealed by it.
func TestReceiptRecordInterop(t *testing.T) {
	if protocol.ReceiptDomain != "lloom-receipt" || string(protocol.ReceiptPayloadType) != "/lloom/receipt/1" {
		t.Fatalf("receipt envelope names are %q and %q, want lloom-receipt and /lloom/receipt/1",
			protocol.ReceiptDomain, protocol.ReceiptPayloadType)
	}
	p := newReceiptParties(t)
	r := p.validReceipt()
	raw := sealReceipt(t, r, p.execKey)

	var rec protocol.ReceiptRecord
	env, err := record.ConsumeTypedEnvelope(raw, &rec)
	if err != nil {
		t.Fatalf("record.ConsumeTypedEnvelope of a receipt: %v", err)
	}
	if !proto.Equal(&rec.Receipt, r) {
		t.Errorf("ConsumeTypedEnvelope decoded %v, want %v", &rec.Receipt, r)
	}
	if string(env.PayloadType) != "/lloom/receipt/1" {
		t.Errorf("envelope payload type %q, want /lloom/receipt/1", env.PayloadType)
	}
	if signer, err := peer.IDFromPublicKey(env.PublicKey); err != nil || signer != p.exec {
		t.Errorf("envelope signed by %s (%v), want the executor %s", signer, err, p.exec)
	}

	// Through the registry: RegisterType made the payload type known.
	_, generic, err := record.ConsumeEnvelope(raw, "lloom-receipt")
	if err != nil {
		t.Fatalf("record.ConsumeEnvelope of a receipt: %v", err)
	}
	if gr, ok := generic.(*protocol.ReceiptRecord); !ok || !proto.Equal(&gr.Receipt, r) {
		t.Errorf("record.ConsumeEnvelope returned %T %v, want the receipt", generic, generic)
	}
	if _, _, err := record.ConsumeEnvelope(raw, protocol.AnnouncementDomain); err == nil {
		t.Errorf("a receipt opened under the announcement domain")
	}

	// The other way: an envelope sealed by record.Seal verifies.
	own := &protocol.ReceiptRecord{}
	proto.Merge(&own.Receipt, r)
	if _, err := protocol.VerifyReceipt(sealForeign(t, own, p.execKey), p.claim()); err != nil {
		t.Errorf("a receipt sealed with record.Seal is refused: %v", err)
	}
}
