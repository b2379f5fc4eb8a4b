package backendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// maxBody bounds a request body, as lloom's own limit does.
const maxBody = 4 << 20

func (f *Fake) snapshot() settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings
}

func (f *Fake) isDown() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down
}

func (f *Fake) handleModels(w http.ResponseWriter, r *http.Request) {
	cfg := f.snapshot()
	if cfg.down {
		panic(http.ErrAbortHandler) // drop the connection unanswered
	}
	if f.refuse(w, r, cfg) {
		return
	}
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	list := struct {
		Object string  `json:"object"`
		Data   []model `json:"data"`
	}{Object: "list", Data: []model{}}
	for _, id := range cfg.models {
		list.Data = append(list.Data, model{ID: id, Object: "model", OwnedBy: "backendtest"})
	}
	writeJSON(w, http.StatusOK, list)
}

func (f *Fake) handleCompletion(w http.ResponseWriter, r *http.Request, chat bool) {
	cfg := f.snapshot()
	if cfg.down {
		panic(http.ErrAbortHandler)
	}
	f.begin()
	cancelled := false
	defer func() { f.end(cancelled) }()

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var rec Received
	if err == nil {
		if rec, err = decodeRequest(body, chat); err == nil {
			rec.Path, rec.Authorization = r.URL.Path, r.Header.Get("Authorization")
			f.record(rec)
		}
	}
	switch {
	case f.refuse(w, r, cfg):
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error(), "invalid_request_error", "")
		return
	case !slices.Contains(cfg.models, rec.Model):
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found", rec.Model), "invalid_request_error", "model_not_found")
		return
	}
	cancelled = !f.answer(w, r.Context(), cfg, rec, chat)
}

// answer writes the completion, streamed or not. It returns false when the
// client went away first.
func (f *Fake) answer(w http.ResponseWriter, ctx context.Context, cfg settings, rec Received, chat bool) bool {
	if cfg.gate != nil {
		select {
		case <-cfg.gate:
		case <-ctx.Done():
			return false
		case <-f.quit:
			return false
		}
	}
	if !f.wait(ctx, cfg.delayFirst) {
		return false
	}
	toks, finish := plan(cfg.tokens, rec.MaxTokens, rec.Stop)
	u := &usage{PromptTokens: promptWords(rec), CompletionTokens: len(toks)}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if cfg.noUsage {
		u = nil
	}
	resp := f.response(chat, rec.Model)
	if !rec.Stream {
		text := strings.Join(toks, "")
		c := textChoice(chat, text, "", finish)
		if chat {
			c.Delta, c.Message = nil, &message{Role: "assistant", Content: text}
			resp.Object = "chat.completion"
		}
		resp.Choices, resp.Usage = []choice{c}, u
		writeJSON(w, http.StatusOK, resp)
		return true
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	send := func(data []byte) bool {
		if f.isDown() {
			panic(http.ErrAbortHandler)
		}
		if ctx.Err() != nil {
			return false
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sendChoices := func(cs []choice, u *usage) bool {
		resp.Choices, resp.Usage = cs, u
		b, _ := json.Marshal(resp)
		return send(b)
	}
	cut := cfg.cutAfter >= 0
	if cut && len(toks) > cfg.cutAfter {
		toks = toks[:cfg.cutAfter]
	}
	if chat && !sendChoices([]choice{textChoice(true, "", "assistant", "")}, nil) {
		return false
	}
	for i, t := range toks {
		if i > 0 && !f.wait(ctx, cfg.delayBetween) {
			return false
		}
		if !sendChoices([]choice{textChoice(chat, t, "", "")}, nil) {
			return false
		}
	}
	if cut {
		return true // ends the body cleanly, without finish_reason or [DONE]
	}
	if !sendChoices([]choice{textChoice(chat, "", "", finish)}, nil) {
		return false
	}
	if rec.IncludeUsage && u != nil && !sendChoices([]choice{}, u) {
		return false
	}
	return send([]byte("[DONE]"))
}

func (f *Fake) response(chat bool, model string) response {
	f.mu.Lock()
	f.nextID++
	id := f.nextID
	f.mu.Unlock()
	r := response{ID: fmt.Sprintf("cmpl-fake-%d", id), Object: "text_completion", Created: time.Now().Unix(), Model: model}
	if chat {
		r.ID, r.Object = fmt.Sprintf("chatcmpl-fake-%d", id), "chat.completion.chunk"
	}
	return r
}

// wait sleeps for d unless the client goes away or the fake closes first.
func (f *Fake) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-f.quit:
	}
	return false
}
