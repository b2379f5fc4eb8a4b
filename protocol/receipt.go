package protocol

import (
	"bytes"
	"crypto/sha256"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"google.golang.org/protobuf/proto"

	"github.com/lloom/lloom/protocol/pb"
)

// Receipt envelope names.
const ReceiptDomain = "lloom-receipt"

var ReceiptPayloadType = []byte("/lloom/receipt/1")

// ReceiptRecord adapts a Receipt to record.Record.
type ReceiptRecord struct{ pb.Receipt }

func (*ReceiptRecord) Domain() string { return ReceiptDomain }
func (*ReceiptRecord) Codec() []byte  { return ReceiptPayloadType }
func (r *ReceiptRecord) MarshalRecord() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(&r.Receipt)
}
func (r *ReceiptRecord) UnmarshalRecord(b []byte) error {
	return proto.Unmarshal(b, &r.Receipt)
}

func init() { record.RegisterType(&ReceiptRecord{}) }

// SealReceipt signs r with key, whose peer id must be r's executor_id.
func SealReceipt(r *pb.Receipt, key crypto.PrivKey) ([]byte, error) {
	rec := &ReceiptRecord{}
	proto.Merge(&rec.Receipt, r)
	return seal(rec, r.GetExecutorId(), key)
}

// OutputDigest is the receipt's output_sha256 of an answer's text.
func OutputDigest(text string) []byte {
	d := sha256.Sum256([]byte(text))
	return d[:]
}

// ReceiptClaim is what a client knows and the receipt must agree with.
type ReceiptClaim struct {
	Executor  peer.ID // the executor it called
	Client    peer.ID // itself
	RequestID []byte
	ModelID   string
	Text      string // every chunk's text, concatenated as received
}

// VerifiedReceipt is a receipt whose signature, signer and contents a
// client has checked; only VerifyReceipt makes one.
type VerifiedReceipt struct {
	Raw     []byte
	Receipt *pb.Receipt
}

// VerifyReceipt opens a receipt envelope and checks it against what the
// client knows: signer = executor_id = the executor called, client_id,
// request_id, model, the digest of the text received, and fee_wei
// recomputed from the receipt's own fields. Every failure matches
// ErrInvalidSignature or ErrMalformed.
func VerifyReceipt(raw []byte, want ReceiptClaim) (*VerifiedReceipt, error) {
	r := &pb.Receipt{}
	signer, sig, err := decodeEnvelope(raw, ReceiptPayloadType, r)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(signer, r.GetExecutorId()); err != nil {
		return nil, err
	}
	if err := sig.verify(ReceiptDomain); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (*VerifiedReceipt, error) {
		return nil, malformed("receipt: "+format, args...)
	}
	switch {
	case signer != want.Executor:
		return bad("signed by %s, not by the executor called (%s)", signer, want.Executor)
	case !bytes.Equal(r.GetClientId(), []byte(want.Client)):
		return bad("made out to another client")
	case !bytes.Equal(r.GetRequestId(), want.RequestID):
		return bad("for another request")
	case want.ModelID != "" && r.GetModelId() != want.ModelID:
		return bad("for model %q, not %q", truncate(r.GetModelId()), want.ModelID)
	case !bytes.Equal(r.GetOutputSha256(), OutputDigest(want.Text)):
		return bad("output digest does not match the text received")
	}
	for name, v := range map[string]string{
		"input_token_price_wei":  r.GetInputTokenPriceWei(),
		"output_token_price_wei": r.GetOutputTokenPriceWei(),
		"minimum_fee_wei":        r.GetMinimumFeeWei(),
	} {
		if err := CheckPrice(v); err != nil || v == "" || CanonicalWei(v) != v {
			return bad("%s %q is not canonical decimal wei", name, truncate(v))
		}
	}
	// A fee may exceed 78 digits (prices of 78 digits times 2^32 tokens);
	// it must equal the recomputed fee, which is canonical.
	fee := Fee(r.GetPromptTokens(), r.GetCompletionTokens(), r.GetInputTokenPriceWei(), r.GetOutputTokenPriceWei(), r.GetMinimumFeeWei())
	if fee != r.GetFeeWei() {
		return bad("fee_wei %s, but its own prices and usage make %s", r.GetFeeWei(), fee)
	}
	return &VerifiedReceipt{Raw: raw, Receipt: r}, nil
}

// String is a one-line summary for logs.
func (v *VerifiedReceipt) String() string {
	return fmt.Sprintf("receipt %x: %d+%d tokens, fee %s wei", v.Receipt.GetRequestId(), v.Receipt.GetPromptTokens(), v.Receipt.GetCompletionTokens(), v.Receipt.GetFeeWei())
}
