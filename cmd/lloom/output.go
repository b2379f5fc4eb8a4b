package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/pkg/feed"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// JSON shapes of the client commands. Scripts rely on these names.

type executorJSON struct {
	PeerID           string            `json:"peer_id"`
	Status           string            `json:"status"`
	ActiveRequests   uint32            `json:"active_requests"`
	QueuedRequests   uint32            `json:"queued_requests"`
	Capacity         uint32            `json:"capacity"`
	LastSeen         string            `json:"last_seen"`
	Addrs            []string          `json:"addrs"`
	BackendType      string            `json:"backend_type"`
	MaxContextLength uint32            `json:"max_context_length"`
	Features         []string          `json:"features"`
	Verified         bool              `json:"verified"`
	Reached          bool              `json:"reached"`
	Available        bool              `json:"available"`
	Architecture     string            `json:"architecture,omitempty"`
	ModelSize        string            `json:"model_size,omitempty"`
	Quantization     string            `json:"quantization,omitempty"`
	Pricing          *pricingJSON      `json:"pricing,omitempty"`
	Performance      *performanceJSON  `json:"performance,omitempty"`
	Metadata         map[string]string `json:"metadata,omitempty"`
	AnnouncementSeq  string            `json:"announcement_seq"` // a string: it exceeds 2^53
	EVMAddress       string            `json:"evm_address,omitempty"`
	Validators       []string          `json:"validators"`
}

type pricingJSON struct {
	InputTokenPriceWei  string `json:"input_token_price_wei"`
	OutputTokenPriceWei string `json:"output_token_price_wei"`
	MinimumFeeWei       string `json:"minimum_fee_wei"`
}

type performanceJSON struct {
	TokensPerSecond    float64 `json:"tokens_per_second"`
	TimeToFirstTokenMs uint32  `json:"time_to_first_token_ms"`
	SuccessRate        float64 `json:"success_rate"`
	AverageLatencyMs   uint32  `json:"average_latency_ms"`
}

type modelJSONEntry struct {
	ModelID       string         `json:"model_id"`
	ExecutorCount int            `json:"executor_count"`
	Executors     []executorJSON `json:"executors"`
}

type modelsOut struct {
	Models []modelJSONEntry `json:"models"`
}

type queryOut struct {
	ModelID   string         `json:"model_id"`
	Executors []executorJSON `json:"executors"`
}

func toExecutorJSON(x *client.Executor) executorJSON {
	m := x.Model
	out := executorJSON{
		PeerID:           x.PeerID.String(),
		Status:           lp.StatusName(x.Status),
		ActiveRequests:   x.Active,
		QueuedRequests:   x.Queued,
		Capacity:         x.Capacity,
		LastSeen:         x.LastSeen.UTC().Format(time.RFC3339),
		Addrs:            nonNil(x.Addrs),
		BackendType:      m.GetBackendType(),
		MaxContextLength: m.GetMaxContextLength(),
		Features:         nonNil(m.GetFeatures()),
		Verified:         x.Verified,
		Reached:          x.Reached,
		Available:        m.GetAvailable(),
		Architecture:     m.GetArchitecture(),
		ModelSize:        m.GetModelSize(),
		Quantization:     m.GetQuantization(),
		Metadata:         m.GetMetadata(),
		AnnouncementSeq:  strconv.FormatUint(x.Announcement.GetSeq(), 10),
		EVMAddress:       x.Announcement.GetEvmAddress(),
		Validators:       nonNil(x.Validators),
	}
	if p := m.GetPricing(); p != nil {
		out.Pricing = &pricingJSON{p.GetInputTokenPriceWei(), p.GetOutputTokenPriceWei(), p.GetMinimumFeeWei()}
	}
	if p := m.GetPerformance(); p != nil {
		out.Performance = &performanceJSON{p.GetTokensPerSecond(), p.GetTimeToFirstTokenMs(), p.GetSuccessRate(), p.GetAverageLatencyMs()}
	}
	return out
}

func executorsJSON(xs []*client.Executor) []executorJSON {
	out := make([]executorJSON, 0, len(xs))
	for _, x := range xs {
		out = append(out, toExecutorJSON(x))
	}
	return out
}

func modelsJSON(res *client.ModelsResult) modelsOut {
	out := modelsOut{Models: []modelJSONEntry{}}
	for _, m := range res.Models {
		out.Models = append(out.Models, modelJSONEntry{ModelID: m.ID, ExecutorCount: len(m.Executors), Executors: executorsJSON(m.Executors)})
	}
	return out
}

func modelJSON(res *client.ModelResult) queryOut {
	return queryOut{ModelID: res.ModelID, Executors: executorsJSON(res.Executors)}
}

func statsJSON(res *client.StatsResult) map[string]any {
	// The top level is the fullest validator's view (most executors); each
	// validator's own figures follow.
	out := statsFields(res.Validators[0].Stats)
	var vals []map[string]any
	for _, v := range res.Validators {
		m := statsFields(v.Stats)
		m["validator"] = v.Validator
		vals = append(vals, m)
	}
	out["validators"] = vals
	return out
}

// statsFields is a validator's statistics as JSON, the same names as
// the validator's HTTP API.
func statsFields(s *pb.Statistics) map[string]any { return feed.Stats(s) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Human output.

func printModels(w io.Writer, res *client.ModelsResult, asked int) {
	execs := map[string]bool{}
	for _, m := range res.Models {
		for _, x := range m.Executors {
			execs[x.PeerID.String()] = true
		}
	}
	if len(res.Models) == 0 {
		fmt.Fprintf(w, "No models found (%d validator(s) asked, %d answered)\n", asked, asked-len(res.Failures))
		return
	}
	fmt.Fprintf(w, "Found %d models served by %d executors (%d validator(s) asked, %d answered)\n\n",
		len(res.Models), len(execs), asked, asked-len(res.Failures))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tEXECUTORS\tHEALTHY\tOVERLOADED\tSTALE\tBACKENDS\tMAX CONTEXT")
	for _, m := range res.Models {
		var healthy, over, stale int
		backends := map[string]bool{}
		var maxCtx uint32
		for _, x := range m.Executors {
			switch x.Status {
			case pb.ExecutorStatus_EXECUTOR_STATUS_HEALTHY:
				healthy++
			case pb.ExecutorStatus_EXECUTOR_STATUS_OVERLOADED:
				over++
			case pb.ExecutorStatus_EXECUTOR_STATUS_STALE:
				stale++
			}
			backends[orUnknown(x.Model.GetBackendType())] = true
			maxCtx = max(maxCtx, x.Model.GetMaxContextLength())
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\t%s\n", m.ID, len(m.Executors), healthy, over, stale, joinKeys(backends), contextText(maxCtx))
	}
	tw.Flush()
}

func printModel(w io.Writer, res *client.ModelResult) {
	if len(res.Executors) == 0 {
		fmt.Fprintf(w, "Model query result for %s: no executor serves it\n", res.ModelID)
		return
	}
	fmt.Fprintf(w, "Model query result for %s: %d executor(s), least loaded first\n\n", res.ModelID, len(res.Executors))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tPEER ID\tSTATUS\tACTIVE\tQUEUED\tCAPACITY\tBACKEND\tCONTEXT\tPRICE IN/OUT (wei)\tLAST SEEN\tADDRESS")
	for i, x := range res.Executors {
		addr := "-"
		if len(x.Addrs) > 0 {
			addr = x.Addrs[0]
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\n", i+1, x.PeerID, lp.StatusName(x.Status),
			x.Active, x.Queued, x.Capacity, orUnknown(x.Model.GetBackendType()), contextText(x.Model.GetMaxContextLength()),
			priceText(x.Model.GetPricing()), ago(x.LastSeen), addr)
	}
	tw.Flush()
}

func printStats(w io.Writer, res *client.StatsResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VALIDATOR\tEXECUTORS\tHEALTHY\tOVERLOADED\tSTALE\tMODELS\tANNOUNCEMENTS\tHEARTBEATS\tREJECTED\tIGNORED\tDROPPED\tRELAY SLOTS/CIRCUITS\tUPTIME")
	for _, v := range res.Validators {
		s := v.Stats
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%s\n", v.Validator, s.GetExecutors(), s.GetHealthy(),
			s.GetOverloaded(), s.GetStale(), s.GetModels(), s.GetAnnouncementsAccepted(), s.GetHeartbeatsAccepted(),
			s.GetMessagesRejected(), s.GetMessagesIgnored(), s.GetMessagesDropped(), s.GetRelayReservations(), s.GetRelayCircuits(),
			time.Duration(s.GetUptimeSeconds())*time.Second)
	}
	tw.Flush()
}

func ago(t time.Time) string {
	d := time.Since(t).Round(time.Second)
	if d < 0 {
		d = 0
	}
	return d.String() + " ago"
}

// unknown stands in the tables for what an executor did not announce.
const unknown = "-"

func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// contextText is a context length, or unknown for 0 (not announced).
func contextText(n uint32) string {
	if n == 0 {
		return unknown
	}
	return strconv.FormatUint(uint64(n), 10)
}

// priceText is "IN/OUT" wei per token, or "free": an executor that
// announces no price charges nothing (its receipts say 0).
func priceText(p *pb.Pricing) string {
	in, out := lp.CanonicalWei(p.GetInputTokenPriceWei()), lp.CanonicalWei(p.GetOutputTokenPriceWei())
	fee := lp.CanonicalWei(p.GetMinimumFeeWei())
	if in == "0" && out == "0" && fee == "0" {
		return "free"
	}
	if fee != "0" {
		return in + "/" + out + " (min " + fee + ")"
	}
	return in + "/" + out
}

func joinKeys(m map[string]bool) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}
