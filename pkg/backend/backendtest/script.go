package backendtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

const (
	// defaultTokens is the length of the default answer without max_tokens.
	defaultTokens = 8
	// maxDefaultTokens caps the default answer: a larger max_tokens gets
	// this many words and finish_reason "stop", as a model that ran out of
	// things to say would.
	maxDefaultTokens = 4096
)

// plan returns the tokens an answer sends and its finish reason: custom
// tokens (or the default words "w0", " w1", ...), cut by max_tokens
// ("length"), then before the first stop string ("stop").
func plan(custom []string, maxTokens *uint32, stop []string) ([]string, string) {
	toks, finish := custom, "stop"
	if toks == nil {
		n := defaultTokens
		if maxTokens != nil {
			n = int(min(*maxTokens, maxDefaultTokens))
			if *maxTokens <= maxDefaultTokens {
				finish = "length"
			}
		}
		toks = make([]string, n)
		for i := range toks {
			toks[i] = fmt.Sprintf(" w%d", i)
		}
		if n > 0 {
			toks[0] = "w0"
		}
	} else if maxTokens != nil && uint64(*maxTokens) < uint64(len(toks)) {
		toks, finish = toks[:*maxTokens], "length"
	}
	full := strings.Join(toks, "")
	cut := -1
	for _, s := range stop {
		if i := strings.Index(full, s); s != "" && i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut < 0 {
		return toks, finish
	}
	var out []string
	pos := 0
	for _, t := range toks {
		if pos+len(t) > cut {
			if pos < cut {
				out = append(out, t[:cut-pos])
			}
			break
		}
		out = append(out, t)
		pos += len(t)
	}
	return out, "stop"
}

// promptWords counts the whitespace-separated words of the prompt or of
// every message: the fake's prompt_tokens.
func promptWords(r Received) int {
	n := len(strings.Fields(r.Prompt))
	for _, m := range r.Messages {
		n += len(strings.Fields(m.Content))
	}
	return n
}

// wireRequest is what the fake reads of a completion request.
type wireRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Prompt        *string         `json:"prompt"`
	MaxTokens     *uint32         `json:"max_tokens"`
	Temperature   *float64        `json:"temperature"`
	TopP          *float64        `json:"top_p"`
	Stop          json.RawMessage `json:"stop"`
	Seed          *int64          `json:"seed"`
	Stream        bool            `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// decodeRequest decodes and checks a completion request body as OpenAI
// would, loosely: a model, messages for chat, a string prompt otherwise.
func decodeRequest(body []byte, chat bool) (Received, error) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return Received{}, fmt.Errorf("could not parse the JSON body of your request: %v", err)
	}
	r := Received{Model: w.Model, MaxTokens: w.MaxTokens, Temperature: w.Temperature, TopP: w.TopP,
		Seed: w.Seed, Stream: w.Stream, IncludeUsage: w.StreamOptions != nil && w.StreamOptions.IncludeUsage}
	for _, m := range w.Messages {
		r.Messages = append(r.Messages, Message{Role: m.Role, Content: m.Content})
	}
	if w.Prompt != nil {
		r.Prompt = *w.Prompt
	}
	if len(w.Stop) > 0 && string(w.Stop) != "null" {
		var one string
		if json.Unmarshal(w.Stop, &one) == nil {
			r.Stop = []string{one}
		} else if err := json.Unmarshal(w.Stop, &r.Stop); err != nil {
			return Received{}, errors.New("stop must be a string or an array of strings")
		}
	}
	switch {
	case r.Model == "":
		return Received{}, errors.New("you must provide a model parameter")
	case chat && len(r.Messages) == 0:
		return Received{}, errors.New("messages must not be empty")
	case !chat && w.Prompt == nil:
		return Received{}, errors.New("you must provide a prompt parameter")
	}
	return r, nil
}

// The OpenAI response shapes the fake writes.
type (
	usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	}
	delta struct {
		Role    string  `json:"role,omitempty"`
		Content *string `json:"content,omitempty"`
	}
	message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	choice struct {
		Index        int       `json:"index"`
		Delta        *delta    `json:"delta,omitempty"`   // chat chunk
		Message      *message  `json:"message,omitempty"` // chat, not streamed
		Text         *string   `json:"text,omitempty"`    // text completion
		Logprobs     *struct{} `json:"logprobs"`
		FinishReason *string   `json:"finish_reason"`
	}
	response struct {
		ID      string   `json:"id"`
		Object  string   `json:"object"`
		Created int64    `json:"created"`
		Model   string   `json:"model"`
		Choices []choice `json:"choices"`
		Usage   *usage   `json:"usage,omitempty"`
	}
)

// textChoice is a streamed choice carrying text (and a finish reason when
// finish is not empty).
func textChoice(chat bool, text, role, finish string) choice {
	c := choice{}
	if chat {
		c.Delta = &delta{Role: role}
		if text != "" || role != "" {
			c.Delta.Content = &text
		}
	} else {
		c.Text = &text
	}
	if finish != "" {
		c.FinishReason = &finish
	}
	return c
}
