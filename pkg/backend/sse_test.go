package backend

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAll runs an eventReader to its end, returning payloads ("[DONE]" for
// errDone) and the final error (nil after [DONE]).
func readAll(r io.Reader) ([]string, error) {
	er := newEventReader(r)
	var out []string
	for {
		p, err := er.next()
		switch {
		case errors.Is(err, errDone):
			return append(out, "[DONE]"), nil
		case err != nil:
			return out, err
		}
		out = append(out, string(p))
	}
}

func TestEventReader(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []string
		wantErr error
	}{
		{"plain", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []string{`{"a":1}`, "[DONE]"}, nil},
		{"no space after colon", "data:{\"a\":1}\n\ndata:[DONE]\n", []string{`{"a":1}`, "[DONE]"}, nil},
		{"CRLF", "data: {\"a\":1}\r\n\r\ndata: [DONE]\r\n\r\n", []string{`{"a":1}`, "[DONE]"}, nil},
		{"comments, event and id lines ignored", ": ping\nevent: message\nid: 3\nretry: 10\ndata: {}\n\n: bye\ndata: [DONE]\n",
			[]string{`{}`, "[DONE]"}, nil},
		{"no blank lines between events", "data: {\"a\":1}\ndata: {\"b\":2}\ndata: [DONE]\n", []string{`{"a":1}`, `{"b":2}`, "[DONE]"}, nil},
		{"JSON split over data lines", "data: {\"a\":\ndata: 1}\n\ndata: [DONE]\n", []string{"{\"a\":\n1}", "[DONE]"}, nil},
		{"garbage dispatched at the blank line", "data: garbage\n\ndata: [DONE]\n", []string{"garbage", "[DONE]"}, nil},
		{"garbage dispatched at the end", "data: garbage", []string{"garbage"}, io.EOF},
		{"empty data lines are nothing", "data:\n\ndata: [DONE]\n", []string{"[DONE]"}, nil},
		{"clean end without DONE", "data: {}\n\n", []string{`{}`}, io.EOF},
		{"empty body", "", nil, io.EOF},
		{"over-long line", "data: \"" + strings.Repeat("x", maxEvent) + "\"\n", nil, ErrFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// One byte per read: payloads must not depend on how the body
			// arrives.
			var r io.Reader = strings.NewReader(tt.body)
			if len(tt.body) < 4096 {
				r = iotest.OneByteReader(r)
			}
			got, err := readAll(r)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("payloads %q, want %q", got, tt.want)
			}
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestParseChunk(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		chat    bool
		want    chunk
		wantErr bool
	}{
		{"chat delta", `{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}`, true, chunk{text: "Hi"}, false},
		{"chat role only, null content", `{"choices":[{"delta":{"role":"assistant","content":null}}]}`, true, chunk{}, false},
		{"chat ignores text", `{"choices":[{"text":"no","delta":{}}]}`, true, chunk{}, false},
		{"completion text", `{"choices":[{"text":"Hi","finish_reason":null}]}`, false, chunk{text: "Hi"}, false},
		{"completion ignores delta", `{"choices":[{"delta":{"content":"no"}}]}`, false, chunk{}, false},
		{"finish with usage", `{"choices":[{"delta":{},"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}`, true,
			chunk{finish: "length", usage: &Usage{3, 5}}, false},
		{"usage with empty choices", `{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}`, true, chunk{usage: &Usage{3, 5}}, false},
		{"usage null", `{"choices":[{"delta":{"content":"x"}}],"usage":null}`, true, chunk{text: "x"}, false},
		{"last finish among choices", `{"choices":[{"finish_reason":"stop"},{"finish_reason":"length"},{"finish_reason":null}]}`, true, chunk{finish: "length"}, false},
		{"usage clamped", `{"usage":{"prompt_tokens":-1,"completion_tokens":99999999999}}`, true, chunk{usage: &Usage{0, 4294967295}}, false},
		{"error object", `{"error":{"message":"out of memory","type":"server_error"}}`, true, chunk{err: "out of memory"}, false},
		{"error string", `{"error":"model crashed"}`, false, chunk{err: "model crashed"}, false},
		{"error null", `{"error":null,"choices":[]}`, false, chunk{}, false},
		{"null payload", `null`, true, chunk{}, false},
		{"not an object", `42`, true, chunk{}, true},
		{"content not a string", `{"choices":[{"delta":{"content":[1]}}]}`, true, chunk{}, true},
		{"garbage", `garbage`, true, chunk{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseChunk([]byte(tt.payload), tt.chat)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got.text != tt.want.text || got.finish != tt.want.finish || got.err != tt.want.err ||
				(got.usage == nil) != (tt.want.usage == nil) || got.usage != nil && *got.usage != *tt.want.usage {
				t.Fatalf("parseChunk = %+v (usage %v), want %+v (usage %v)", got, got.usage, tt.want, tt.want.usage)
			}
		})
	}
}
