package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/lloom/lloom/node/client"
)

// sseStream writes one answer as server-sent events in OpenAI's chunk
// format. Its headers go out with the first chunk, once an executor has
// answered, so that failover before the first token stays invisible.
type sseStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	chat    bool
	model   string
	id      string
	created int64
	first   bool
}

func (g *Gateway) openStream(w http.ResponseWriter, o *openAIRequest, chat bool, x *client.Executor) *sseStream {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	if x != nil {
		h.Set("X-Lloom-Executor", x.PeerID.String())
		h.Set("X-Lloom-Connection", g.connectionTo(x.PeerID)) // reach.go
	}
	w.WriteHeader(http.StatusOK)
	s := &sseStream{w: w, rc: http.NewResponseController(w), chat: chat, model: o.Model, created: time.Now().Unix(), first: true}
	var id [12]byte
	_, _ = rand.Read(id[:])
	s.id = "chatcmpl-" + hex.EncodeToString(id[:])
	if !chat {
		s.id = "cmpl-" + hex.EncodeToString(id[:])
	}
	return s
}

func (s *sseStream) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", b); err != nil {
		return err
	}
	return s.rc.Flush()
}

// chunk builds one chunk object with the given choice (nil: no choices).
func (s *sseStream) chunk(choice map[string]any, extra map[string]any) map[string]any {
	c := map[string]any{"id": s.id, "created": s.created, "model": s.model}
	if s.chat {
		c["object"] = "chat.completion.chunk"
	} else {
		c["object"] = "text_completion"
	}
	c["choices"] = []map[string]any{}
	if choice != nil {
		c["choices"] = []map[string]any{choice}
	}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func (s *sseStream) text(t string) error {
	var choice map[string]any
	if s.chat {
		delta := map[string]any{"content": t}
		if s.first {
			delta["role"] = "assistant"
		}
		choice = map[string]any{"index": 0, "delta": delta, "finish_reason": nil, "logprobs": nil}
	} else {
		choice = map[string]any{"index": 0, "text": t, "finish_reason": nil, "logprobs": nil}
	}
	s.first = false
	return s.event(s.chunk(choice, nil))
}

// finish sends the finish reason, the usage chunk when asked for, the
// lloom object (executor, receipt, attempts) in the last chunk, and
// [DONE].
func (s *sseStream) finish(ans *client.Answer, includeUsage bool) {
	var choice map[string]any
	if s.chat {
		delta := map[string]any{}
		if s.first {
			delta = map[string]any{"role": "assistant", "content": ""}
		}
		choice = map[string]any{"index": 0, "delta": delta, "finish_reason": ans.FinishReason, "logprobs": nil}
	} else {
		choice = map[string]any{"index": 0, "text": "", "finish_reason": ans.FinishReason, "logprobs": nil}
	}
	if s.event(s.chunk(choice, nil)) != nil {
		return
	}
	last := map[string]any{"lloom": lloomOf(ans)}
	if includeUsage {
		last["usage"] = usageOf(ans)
	}
	if s.event(s.chunk(nil, last)) != nil {
		return
	}
	_, _ = fmt.Fprint(s.w, "data: [DONE]\n\n")
	_ = s.rc.Flush()
}

// fail ends a started stream with an error event in OpenAI's style and no
// [DONE], so that no client takes the cut answer for a complete one.
func (s *sseStream) fail(err error) {
	_ = s.event(map[string]apiError{"error": {
		Message: "the answer was cut: " + err.Error(), Type: "api_error", Code: "executor_failed"}})
}
