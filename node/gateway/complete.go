package gateway

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/lloom/lloom/node/client"
)

func (g *Gateway) chat(w http.ResponseWriter, r *http.Request)     { g.serve(w, r, true) }
func (g *Gateway) complete(w http.ResponseWriter, r *http.Request) { g.serve(w, r, false) }

// serve answers one completion request, streamed or not.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, chat bool) {
	o, req, err := g.decode(w, r, chat)
	if err != nil {
		classify("", nil, err).write(w)
		return
	}
	// Until the answer starts, the gateway's timeout holds; a client that
	// goes away cancels the request at the executor, and so at its backend.
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	var started atomic.Bool
	timer := time.AfterFunc(g.cfg.Timeout, func() {
		if !started.Load() {
			cancel(context.DeadlineExceeded)
		}
	})
	defer timer.Stop()

	var current *client.Executor
	req.OnAttempt = func(x *client.Executor) { current = x }
	var s *sseStream
	var onText func(string) error
	if o.Stream {
		onText = func(t string) error {
			if s == nil {
				started.Store(true)
				s = g.openStream(w, o, chat, current)
			}
			return s.text(t)
		}
	} else {
		onText = func(string) error {
			started.Store(true)
			return nil
		}
	}
	begin := time.Now()
	ans, err := g.infer(ctx, req, onText)
	log := g.log.With().Str("model", req.Model).Bool("stream", o.Stream).Logger()
	switch {
	case err != nil && s != nil:
		// The answer had started: end the stream with an error event, so
		// that it never looks complete.
		log.Warn().Err(err).Msg("Answer failed after its first token")
		s.fail(err)
		return
	case err != nil && ans != nil && ans.Text != "":
		log.Warn().Err(err).Msg("Answer failed after its first token")
		failure{status: http.StatusBadGateway, typ: "api_error", code: "executor_failed",
			msg: fmt.Sprintf("the answer was cut after %d bytes: %v", len(ans.Text), err)}.write(w)
		return
	case err != nil:
		if ctx.Err() != nil && r.Context().Err() != nil {
			log.Debug().Msg("Client went away before the answer started")
			return
		}
		f := classify(req.Model, ans, err)
		log.Debug().Err(err).Int("status", f.status).Msg("Request failed")
		f.write(w)
		return
	}
	log.Debug().Str("executor", ans.Executor.String()).Dur("took", time.Since(begin)).Msg("Answered")
	if o.Stream {
		if s == nil { // a complete answer with no text
			s = g.openStream(w, o, chat, current)
		}
		s.finish(ans, o.StreamOptions != nil && o.StreamOptions.IncludeUsage)
		return
	}
	g.writeCompletion(w, o, chat, ans)
}

// lloomJSON is the "lloom" object of every answer.
type lloomJSON struct {
	Executor string        `json:"executor"`
	Receipt  string        `json:"receipt"`
	Attempts []attemptJSON `json:"attempts"`
}

type attemptJSON struct {
	Executor  string `json:"executor"`
	ErrorCode int32  `json:"error_code"`
	Error     string `json:"error,omitempty"`
}

func lloomOf(ans *client.Answer) lloomJSON {
	l := lloomJSON{Executor: ans.Executor.String(), Attempts: []attemptJSON{}}
	if ans.Receipt != nil {
		l.Receipt = base64.StdEncoding.EncodeToString(ans.Receipt.Raw)
	}
	for _, a := range ans.Attempts {
		j := attemptJSON{Executor: a.Executor.String(), ErrorCode: int32(a.Code)}
		if a.Err != nil {
			j.Error = a.Err.Error()
		}
		l.Attempts = append(l.Attempts, j)
	}
	return l
}

type usageJSON struct {
	PromptTokens     uint32 `json:"prompt_tokens"`
	CompletionTokens uint32 `json:"completion_tokens"`
	TotalTokens      uint32 `json:"total_tokens"`
}

func usageOf(ans *client.Answer) usageJSON {
	p, c := ans.Usage.GetPromptTokens(), ans.Usage.GetCompletionTokens()
	return usageJSON{p, c, p + c}
}

func responseID(chat bool, ans *client.Answer) string {
	if chat {
		return "chatcmpl-" + hex.EncodeToString(ans.RequestID)
	}
	return "cmpl-" + hex.EncodeToString(ans.RequestID)
}

// writeCompletion writes a whole answer as one JSON object.
func (g *Gateway) writeCompletion(w http.ResponseWriter, o *openAIRequest, chat bool, ans *client.Answer) {
	h := w.Header()
	h.Set("X-Lloom-Executor", ans.Executor.String())
	setReachHeaders(h, ans) // reach.go
	if ans.Receipt != nil {
		h.Set("X-Lloom-Receipt", base64.StdEncoding.EncodeToString(ans.Receipt.Raw))
	}
	body := map[string]any{
		"id":      responseID(chat, ans),
		"created": time.Now().Unix(),
		"model":   o.Model,
		"usage":   usageOf(ans),
		"lloom":   lloomOf(ans),
	}
	if chat {
		body["object"] = "chat.completion"
		body["choices"] = []map[string]any{{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": ans.Text},
			"finish_reason": ans.FinishReason,
			"logprobs":      nil,
		}}
	} else {
		body["object"] = "text_completion"
		body["choices"] = []map[string]any{{
			"index": 0, "text": ans.Text, "finish_reason": ans.FinishReason, "logprobs": nil,
		}}
	}
	writeJSON(w, http.StatusOK, body)
}
