package backend

import (
	"encoding/json"
)

// Message is one chat message.
type Message struct {
	Role    string `json:"role"` // system, user or assistant
	Content string `json:"content"`
}

// Request is one completion. Exactly one of Messages (a chat completion)
// and Prompt (a text completion) is set. Nil pointers and an empty Stop
// are not sent, leaving the backend's defaults.
type Request struct {
	Model       string    // the name the backend knows
	Messages    []Message // chat: POST {base}/chat/completions
	Prompt      string    // text: POST {base}/completions
	MaxTokens   *uint32   // sent as max_tokens
	Temperature *float64
	TopP        *float64
	Stop        []string
	Seed        *int64
}

// chat reports whether r is a chat completion.
func (r *Request) chat() bool { return len(r.Messages) > 0 }

// wireRequest is the body of both completion endpoints.
type wireRequest struct {
	Model         string        `json:"model"`
	Messages      []Message     `json:"messages,omitempty"`
	Prompt        *string       `json:"prompt,omitempty"`
	MaxTokens     *uint32       `json:"max_tokens,omitempty"`
	Temperature   *float64      `json:"temperature,omitempty"`
	TopP          *float64      `json:"top_p,omitempty"`
	Stop          []string      `json:"stop,omitempty"`
	Seed          *int64        `json:"seed,omitempty"`
	Stream        bool          `json:"stream"`
	StreamOptions streamOptions `json:"stream_options"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// encode checks r and returns the endpoint path and the streaming body.
// A request the backend could only refuse is a KindInvalid *Error.
func (r *Request) encode() (string, []byte, error) {
	switch {
	case r.Model == "":
		return "", nil, invalid("no model")
	case len(r.Messages) > 0 && r.Prompt != "":
		return "", nil, invalid("both messages and a prompt")
	case len(r.Messages) == 0 && r.Prompt == "":
		return "", nil, invalid("neither messages nor a prompt")
	}
	w := wireRequest{
		Model:         r.Model,
		Messages:      r.Messages,
		MaxTokens:     r.MaxTokens,
		Temperature:   r.Temperature,
		TopP:          r.TopP,
		Stop:          r.Stop,
		Seed:          r.Seed,
		Stream:        true,
		StreamOptions: streamOptions{IncludeUsage: true},
	}
	path := "/chat/completions"
	if !r.chat() {
		w.Prompt = &r.Prompt
		path = "/completions"
	}
	body, err := json.Marshal(&w)
	if err != nil { // a NaN or infinite temperature or top_p
		return "", nil, invalid(err.Error())
	}
	return path, body, nil
}

func invalid(msg string) *Error {
	return &Error{Kind: KindInvalid, Message: oneLine("backend: invalid request: " + msg)}
}
