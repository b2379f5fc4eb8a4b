package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// tinyModel is the one model the built-in backend serves.
const tinyModel = "tiny-echo"

// tinyBackend is the smallest OpenAI-compatible engine an executor can
// serve from: GET /v1/models and streamed POST /v1/chat/completions and
// /v1/completions, with max_tokens, stop and include_usage honoured. Its
// "model" answers with the prompt's own words, one token a word, so that
// the example runs offline, without an LLM.
type tinyBackend struct {
	srv *http.Server
	url string // base URL, ending in /v1
}

func startTinyBackend() (*tinyBackend, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]string{{"id": tinyModel, "object": "model"}}})
	})
	mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { complete(w, r, true) })
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { complete(w, r, false) })
	b := &tinyBackend{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, url: "http://" + ln.Addr().String() + "/v1"}
	go func() { _ = b.srv.Serve(ln) }()
	return b, nil
}

func (b *tinyBackend) Close() error { return b.srv.Close() }

// completionRequest is what the backend reads of a request.
type completionRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Prompt        string          `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	Stop          json.RawMessage `json:"stop"`
	Stream        bool            `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func complete(w http.ResponseWriter, r *http.Request, chat bool) {
	var req completionRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "could not parse the JSON body: "+err.Error())
		return
	}
	if req.Model != tinyModel {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", req.Model))
		return
	}
	if !req.Stream {
		writeError(w, http.StatusBadRequest, "this backend only streams")
		return
	}
	prompt := req.Prompt
	for _, m := range req.Messages {
		if m.Role == "user" {
			prompt = m.Content
		}
	}
	words := strings.Fields(prompt)
	tokens := []string{"You", " asked:"}
	for _, word := range words {
		tokens = append(tokens, " "+word)
	}
	tokens = append(tokens, " —", " and", " this", " answer", " came", " back", " through", " lloom,", " word", " by", " word.")
	finish := "stop"
	if req.MaxTokens != nil && *req.MaxTokens < len(tokens) {
		tokens, finish = tokens[:*req.MaxTokens], "length"
	}
	if cut, ok := cutAtStop(tokens, stops(req.Stop)); ok {
		tokens, finish = cut, "stop"
	}

	w.Header().Set("Content-Type", "text/event-stream")
	rc := http.NewResponseController(w)
	send := func(v any) bool {
		b, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	object := "text_completion"
	if chat {
		object = "chat.completion.chunk"
	}
	chunk := func(text, finish string) map[string]any {
		c := map[string]any{"index": 0, "finish_reason": nil}
		if finish != "" {
			c["finish_reason"] = finish
		}
		if chat {
			c["delta"] = map[string]string{"content": text}
		} else {
			c["text"] = text
		}
		return map[string]any{"id": "tiny-1", "object": object, "model": tinyModel, "choices": []any{c}}
	}
	for _, t := range tokens {
		select {
		case <-r.Context().Done(): // the executor cancelled: stop generating
			return
		case <-time.After(30 * time.Millisecond): // a model takes its time
		}
		if !send(chunk(t, "")) {
			return
		}
	}
	if !send(chunk("", finish)) {
		return
	}
	if req.StreamOptions.IncludeUsage {
		usage := map[string]int{"prompt_tokens": len(words), "completion_tokens": len(tokens), "total_tokens": len(words) + len(tokens)}
		if !send(map[string]any{"id": "tiny-1", "object": object, "model": tinyModel, "choices": []any{}, "usage": usage}) {
			return
		}
	}
	_, _ = fmt.Fprint(w, "data: [DONE]\n\n")
	_ = rc.Flush()
}

// stops decodes "stop": a string or a list of strings.
func stops(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}

// cutAtStop keeps the tokens before the first stop string, reporting
// whether one occurred.
func cutAtStop(tokens, stop []string) ([]string, bool) {
	full := strings.Join(tokens, "")
	at := -1
	for _, s := range stop {
		if i := strings.Index(full, s); s != "" && i >= 0 && (at < 0 || i < at) {
			at = i
		}
	}
	if at < 0 {
		return tokens, false
	}
	var out []string
	n := 0
	for _, t := range tokens {
		if n+len(t) > at {
			if at > n {
				out = append(out, t[:at-n])
			}
			break
		}
		out = append(out, t)
		n += len(t)
	}
	return out, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": msg, "type": "invalid_request_error"}})
}
