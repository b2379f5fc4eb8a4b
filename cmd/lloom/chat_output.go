package main

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// JSON of the inference commands (client chat/complete --json).

type answerOut struct {
	ModelID      string         `json:"model_id"`
	Executor     string         `json:"executor"`
	Text         string         `json:"text"`
	FinishReason string         `json:"finish_reason"`
	Usage        usageJSON      `json:"usage"`
	Receipt      *receiptJSON   `json:"receipt"`
	Attempts     []attemptJSON  `json:"attempts"`
	Candidates   []candidateOut `json:"candidates"`
	TTFTMs       int64          `json:"ttft_ms"`
	Connection   string         `json:"connection,omitempty"` // "direct" or "relayed"
	Punch        string         `json:"punch,omitempty"`      // the hole punch: not needed, succeeded, failed, off
	DurationMs   int64          `json:"duration_ms"`
	Complete     bool           `json:"complete"`
	Error        string         `json:"error,omitempty"`
	ErrorCode    int32          `json:"error_code,omitempty"`
}

type usageJSON struct {
	PromptTokens     uint32 `json:"prompt_tokens"`
	CompletionTokens uint32 `json:"completion_tokens"`
}

type receiptJSON struct {
	Verified            bool   `json:"verified"`
	RequestID           string `json:"request_id"`
	Executor            string `json:"executor"`
	Client              string `json:"client"`
	ModelID             string `json:"model_id"`
	PromptTokens        uint32 `json:"prompt_tokens"`
	CompletionTokens    uint32 `json:"completion_tokens"`
	InputTokenPriceWei  string `json:"input_token_price_wei"`
	OutputTokenPriceWei string `json:"output_token_price_wei"`
	MinimumFeeWei       string `json:"minimum_fee_wei"`
	FeeWei              string `json:"fee_wei"`
	StartedAtMs         int64  `json:"started_at_ms"`
	FinishedAtMs        int64  `json:"finished_at_ms"`
	OutputSHA256        string `json:"output_sha256"`
	FinishReason        string `json:"finish_reason"`
	// Envelope is the signed receipt, standard base64 with padding.
	Envelope string `json:"envelope"`
}

type attemptJSON struct {
	Executor     string `json:"executor"`
	ErrorCode    int32  `json:"error_code"`
	Error        string `json:"error,omitempty"`
	RetryAfterMs int64  `json:"retry_after_ms,omitempty"`
}

type candidateOut struct {
	Executor       string `json:"executor"`
	Status         string `json:"status"`
	ActiveRequests uint32 `json:"active_requests"`
	QueuedRequests uint32 `json:"queued_requests"`
	Capacity       uint32 `json:"capacity"`
	Skipped        string `json:"skipped,omitempty"`
}

func answerJSON(model string, ans *client.Answer, err error) answerOut {
	out := answerOut{
		ModelID: model, Text: ans.Text, FinishReason: ans.FinishReason,
		Usage:      usageJSON{ans.Usage.GetPromptTokens(), ans.Usage.GetCompletionTokens()},
		TTFTMs:     ans.TTFT.Milliseconds(),
		Connection: ans.Connection, Punch: ans.Punch,
		DurationMs: ans.Duration.Milliseconds(),
		Attempts:   []attemptJSON{},
		Candidates: []candidateOut{},
		Complete:   err == nil,
	}
	if ans.Executor != "" {
		out.Executor = ans.Executor.String()
	}
	if err != nil {
		out.Error = oneLine(err)
		out.ErrorCode = int32(codeOf(err))
	}
	if r := ans.Receipt; r != nil {
		x := r.Receipt
		out.Receipt = &receiptJSON{
			Verified: true, RequestID: hex.EncodeToString(x.GetRequestId()),
			Executor: idText(x.GetExecutorId()), Client: idText(x.GetClientId()), ModelID: x.GetModelId(),
			PromptTokens: x.GetPromptTokens(), CompletionTokens: x.GetCompletionTokens(),
			InputTokenPriceWei: x.GetInputTokenPriceWei(), OutputTokenPriceWei: x.GetOutputTokenPriceWei(),
			MinimumFeeWei: x.GetMinimumFeeWei(), FeeWei: x.GetFeeWei(),
			StartedAtMs: x.GetStartedAtMs(), FinishedAtMs: x.GetFinishedAtMs(),
			OutputSHA256: hex.EncodeToString(x.GetOutputSha256()), FinishReason: x.GetFinishReason(),
			Envelope: base64.StdEncoding.EncodeToString(r.Raw),
		}
	}
	for _, a := range ans.Attempts {
		j := attemptJSON{Executor: a.Executor.String(), ErrorCode: int32(a.Code), RetryAfterMs: a.RetryAfter.Milliseconds()}
		if a.Err != nil {
			j.Error = oneLine(a.Err)
		}
		out.Attempts = append(out.Attempts, j)
	}
	for _, c := range ans.Candidates {
		out.Candidates = append(out.Candidates, candidateOut{
			Executor: c.Executor.PeerID.String(), Status: lp.StatusName(c.Executor.Status),
			ActiveRequests: c.Executor.Active, QueuedRequests: c.Executor.Queued, Capacity: c.Executor.Capacity,
			Skipped: c.Skipped,
		})
	}
	return out
}

// explain says what the client saw and did, one line per executor.
func explain(w io.Writer, ans *client.Answer) {
	fmt.Fprintf(w, "%d executor(s) seen:\n", len(ans.Candidates))
	if ans.Connection != "" {
		fmt.Fprintf(w, "connection: %s (hole punch: %s)\n", ans.Connection, ans.Punch)
	}
	tried := map[peer.ID]string{}
	for i, a := range ans.Attempts {
		what := fmt.Sprintf("attempt %d: answered", i+1)
		if a.Err != nil {
			what = fmt.Sprintf("attempt %d: %s", i+1, oneLine(a.Err))
		}
		tried[a.Executor] = what
	}
	for _, c := range ans.Candidates {
		x := c.Executor
		what := "not tried (attempts used up or not needed)"
		switch {
		case c.Skipped != "":
			what = "skipped: " + c.Skipped
		case tried[x.PeerID] != "":
			what = tried[x.PeerID]
		}
		fmt.Fprintf(w, "  %s  %-10s load %d+%d/%d  %s\n", x.PeerID, lp.StatusName(x.Status), x.Active, x.Queued, x.Capacity, what)
	}
}

func idText(b []byte) string {
	id, err := peer.IDFromBytes(b)
	if err != nil {
		return hex.EncodeToString(b)
	}
	return id.String()
}

// codeOf is the wire code of a failure, 0 when it has none.
func codeOf(err error) pb.ErrorCode {
	return client.CodeOf(err)
}
