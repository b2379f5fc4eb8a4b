package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// encodeChunk is a known encoder: a chunk in OpenAI's shapes, as
// json.Marshal writes it.
func encodeChunk(chat bool, text, finish string, usage *Usage) []byte {
	choice := map[string]any{"index": 0, "finish_reason": nil}
	if finish != "" {
		choice["finish_reason"] = finish
	}
	if chat {
		choice["delta"] = map[string]any{"content": text}
	} else {
		choice["text"] = text
	}
	c := map[string]any{"id": "x", "object": "chat.completion.chunk", "choices": []any{choice}}
	if usage != nil {
		c["usage"] = map[string]any{"prompt_tokens": usage.PromptTokens, "completion_tokens": usage.CompletionTokens}
	}
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzParseChunk(f *testing.F) {
	f.Add([]byte(`{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}`), true)
	f.Add([]byte(`{"choices":[{"text":"Hi","finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}`), false)
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}`), true)
	f.Add([]byte(`{"error":{"message":"boom"}}`), true)
	f.Add([]byte(`{"choices":[{"delta":{"content":"\u00e9\ud83d\ude00"}}]}`), true)
	f.Fuzz(func(t *testing.T, payload []byte, chat bool) {
		c, err := parseChunk(payload, chat)
		if err != nil || c.err != "" {
			return
		}
		// What the decoder read, encoded again, must decode to the same.
		again, err := parseChunk(encodeChunk(chat, c.text, c.finish, c.usage), chat)
		if err != nil {
			t.Fatalf("re-encoded chunk does not decode: %v", err)
		}
		if again.text != c.text || again.finish != c.finish || (again.usage == nil) != (c.usage == nil) ||
			c.usage != nil && *again.usage != *c.usage {
			t.Fatalf("round trip changed the chunk: %+v -> %+v", c, again)
		}
	})
}

// FuzzStreamRoundTrip encodes tokens as a server would, in one of several
// legal SSE spellings, and checks that readStream hands back exactly the
// text, finish reason and usage that went in.
func FuzzStreamRoundTrip(f *testing.F) {
	f.Add("Hel", "lo", " wörld\n", true, uint8(0))
	f.Add("", "a", "", false, uint8(0xff))
	f.Add("data: [DONE]", "\r\n", ": x", true, uint8(5))
	f.Fuzz(func(t *testing.T, a, b, c string, chat bool, style uint8) {
		tokens := []string{a, b, c}
		for _, tok := range tokens {
			if !utf8.ValidString(tok) { // json.Marshal would replace the bad bytes
				t.Skip()
			}
		}
		crlf, noSpace, comments, split, usageInFinish := style&1 != 0, style&2 != 0, style&4 != 0, style&8 != 0, style&16 != 0
		eol := "\n"
		if crlf {
			eol = "\r\n"
		}
		prefix := "data: "
		if noSpace {
			prefix = "data:"
		}
		var body strings.Builder
		event := func(payload []byte) {
			if comments {
				body.WriteString(": keep-alive" + eol + "event: message" + eol)
			}
			p := string(payload)
			if split && strings.HasPrefix(p, "{") { // whitespace after '{' is legal JSON
				body.WriteString(prefix + "{" + eol)
				p = p[1:]
			}
			body.WriteString(prefix + p + eol + eol)
		}
		usage := &Usage{PromptTokens: uint32(len(a)), CompletionTokens: 3}
		nonEmpty := 0
		for _, tok := range tokens {
			event(encodeChunk(chat, tok, "", nil))
			if tok != "" {
				nonEmpty++
			}
		}
		if usageInFinish {
			event(encodeChunk(chat, "", "stop", usage))
		} else {
			event(encodeChunk(chat, "", "stop", nil))
			event([]byte(fmt.Sprintf(`{"choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":3}}`, usage.PromptTokens)))
		}
		body.WriteString(prefix + "[DONE]" + eol + eol)

		var got strings.Builder
		res, err := readStream(context.Background(), iotest.HalfReader(strings.NewReader(body.String())), chat, func(s string) error {
			if s == "" {
				t.Fatal("empty delta delivered")
			}
			got.WriteString(s)
			return nil
		})
		if err != nil {
			t.Fatalf("readStream: %v\nbody:\n%s", err, body.String())
		}
		if got.String() != a+b+c || res.Deltas != nonEmpty || res.FinishReason != "stop" || res.Usage == nil || *res.Usage != *usage {
			t.Fatalf("got %q, %+v (usage %v); want %q, %d deltas, stop, %v", got.String(), res, res.Usage, a+b+c, nonEmpty, *usage)
		}
	})
}

// FuzzReadStream feeds arbitrary bodies: readStream must not panic, and
// must either succeed with a finish reason or fail as a KindFailed *Error
// that marks the model unavailable.
func FuzzReadStream(f *testing.F) {
	f.Add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"), true)
	f.Add([]byte("data: {\"choices\":[{\"text\":\"x\"}]}\n\n"), false)
	f.Add([]byte("data: {\"error\":\"x\"}\n"), false)
	f.Add([]byte(": c\r\ndata:{\r\ndata:}\r\n\r\ndata:[DONE]"), true)
	f.Fuzz(func(t *testing.T, body []byte, chat bool) {
		calls := 0
		res, err := readStream(context.Background(), strings.NewReader(string(body)), chat, func(s string) error {
			if s == "" {
				t.Fatal("empty delta delivered")
			}
			calls++
			return nil
		})
		if calls != res.Deltas {
			t.Fatalf("%d deltas delivered, Result.Deltas = %d", calls, res.Deltas)
		}
		if err == nil {
			if res.FinishReason == "" {
				t.Fatal("success without a finish reason")
			}
			return
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindFailed || !e.Unavailable || strings.ContainsAny(e.Message, "\r\n") {
			t.Fatalf("err = %#v, want a one-line KindFailed *Error marking the model unavailable", err)
		}
	})
}
