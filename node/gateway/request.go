package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/lloom/lloom/node/client"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// openAIRequest is what both endpoints accept; unknown fields are ignored,
// as OpenAI does.
type openAIRequest struct {
	Model         string          `json:"model"`
	Messages      []openAIMessage `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	MaxTokens           *uint32         `json:"max_tokens"`
	MaxCompletionTokens *uint32         `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	Stop                json.RawMessage `json:"stop"`
	Seed                *int64          `json:"seed"`
	N                   *int            `json:"n"`
}

type openAIMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// badRequest is a 400 with OpenAI's invalid_request_error.
type badRequest struct {
	param, msg string
}

func (b *badRequest) Error() string { return b.msg }

func bad(param, format string, args ...any) error {
	return &badRequest{param: param, msg: fmt.Sprintf(format, args...)}
}

// errTooLarge marks a body over the limit (413).
var errTooLarge = errors.New("request body too large")

// decode reads and checks a request body into a lloom request.
func (g *Gateway) decode(w http.ResponseWriter, r *http.Request, chat bool) (*openAIRequest, client.Request, error) {
	var req client.Request
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBodyBytes))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return nil, req, fmt.Errorf("%w: the limit is %d bytes", errTooLarge, mb.Limit)
		}
		return nil, req, bad("", "request body not read: %v", err)
	}
	var o openAIRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&o); err != nil {
		return nil, req, bad("", "request body is not valid JSON: %v", err)
	}
	if o.Model == "" {
		return nil, req, bad("model", "you must provide a model parameter")
	}
	if !lp.ValidModelID(o.Model) {
		return nil, req, bad("model", "model %q is not a valid lloom model id (1-128 characters of [A-Za-z0-9._:/@-])", o.Model)
	}
	if o.N != nil && *o.N != 1 {
		return nil, req, bad("n", "n = %d is not supported: lloom returns one choice per request", *o.N)
	}
	req = client.Request{
		Model: o.Model, Temperature: o.Temperature, TopP: o.TopP, Seed: o.Seed,
		MaxTokens: o.MaxTokens, Filters: requestFilters(g.cfg),
		MaxInputPriceWei: g.cfg.MaxInputPriceWei, MaxOutputPriceWei: g.cfg.MaxOutputPriceWei, MaxFeeWei: g.cfg.MaxFeeWei,
		FirstChunkTimeout: g.cfg.Timeout,
	}
	if o.MaxCompletionTokens != nil {
		req.MaxTokens = o.MaxCompletionTokens
	}
	if req.Stop, err = stopList(o.Stop); err != nil {
		return nil, req, err
	}
	if chat {
		if len(o.Messages) == 0 {
			return nil, req, bad("messages", "messages must hold at least one message")
		}
		for i, m := range o.Messages {
			cm, err := chatMessage(i, m)
			if err != nil {
				return nil, req, err
			}
			req.Messages = append(req.Messages, cm)
		}
	} else if req.Prompt, err = promptText(o.Prompt); err != nil {
		return nil, req, err
	}
	// The executor's own checks, with OpenAI's words for the parameter.
	if err := lp.CheckInferenceRequest(probeRequest(req)); err != nil {
		return nil, req, bad("", "%s", strings.TrimSuffix(err.Error(), " (code 6004)"))
	}
	return &o, req, nil
}

// probeRequest is req as the wire would carry it, for checking.
func probeRequest(req client.Request) *pb.InferenceRequest {
	return &pb.InferenceRequest{RequestId: make([]byte, lp.RequestIDSize), ModelId: req.Model,
		Messages: req.Messages, Prompt: req.Prompt, MaxTokens: req.MaxTokens, Temperature: req.Temperature,
		TopP: req.TopP, Stop: req.Stop, Seed: req.Seed,
		MaxInputPriceWei: req.MaxInputPriceWei, MaxOutputPriceWei: req.MaxOutputPriceWei, MaxFeeWei: req.MaxFeeWei}
}

// chatMessage maps one OpenAI message: a string content, or text parts.
func chatMessage(i int, m openAIMessage) (*pb.ChatMessage, error) {
	role := m.Role
	switch role {
	case "system", "user", "assistant":
	case "developer": // OpenAI's newer name for system
		role = "system"
	default:
		return nil, bad(fmt.Sprintf("messages[%d].role", i), "role %q is not supported: use system, user or assistant", m.Role)
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return &pb.ChatMessage{Role: role, Content: s}, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return nil, bad(fmt.Sprintf("messages[%d].content", i), "content must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return nil, bad(fmt.Sprintf("messages[%d].content", i), "content part of type %q is not supported: only text", p.Type)
		}
		b.WriteString(p.Text)
	}
	return &pb.ChatMessage{Role: role, Content: b.String()}, nil
}

// promptText takes a string prompt, or a list holding one string.
func promptText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", bad("prompt", "you must provide a prompt")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil || len(list) != 1 {
		return "", bad("prompt", "prompt must be a string (or a list of exactly one string)")
	}
	return list[0], nil
}

// stopList takes stop as a string or a list of strings.
func stopList(raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return []string{s}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, bad("stop", "stop must be a string or a list of strings")
	}
	return list, nil
}

// requestFilters are the filters of one request: the gateway's, with its
// price limits (as client.Infer sets them), asking also for stale and
// unavailable executors. The client skips those (client.Choose), but
// knowing them tells a model that exists and cannot answer now (503,
// retry later) from one that does not exist (404).
func requestFilters(c Config) *pb.QueryFilters {
	f := c.Filters
	return &pb.QueryFilters{BackendType: f.GetBackendType(), MinContextLength: f.GetMinContextLength(),
		RequiredFeatures: f.GetRequiredFeatures(), MaxInputPriceWei: c.MaxInputPriceWei, MaxOutputPriceWei: c.MaxOutputPriceWei,
		IncludeStale: true, IncludeUnavailable: true}
}
