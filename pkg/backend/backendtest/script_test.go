package backendtest

import (
	"slices"
	"strings"
	"testing"
)

func u32(v uint32) *uint32 { return &v }

func TestPlan(t *testing.T) {
	tests := []struct {
		name       string
		custom     []string
		maxTokens  *uint32
		stop       []string
		want       []string
		wantFinish string
	}{
		{"default words", nil, nil, nil, []string{"w0", " w1", " w2", " w3", " w4", " w5", " w6", " w7"}, "stop"},
		{"max_tokens sets the length", nil, u32(3), nil, []string{"w0", " w1", " w2"}, "length"},
		{"max_tokens 0", nil, u32(0), nil, nil, "length"},
		{"stop cuts inside a token", nil, nil, []string{"1 w"}, []string{"w0", " w"}, "stop"},
		{"stop at a token boundary", nil, nil, []string{" w2"}, []string{"w0", " w1"}, "stop"},
		{"earliest stop wins", nil, nil, []string{" w5", "w3"}, []string{"w0", " w1", " w2", " "}, "stop"},
		{"stop after max_tokens cut is not seen", nil, u32(2), []string{" w5"}, []string{"w0", " w1"}, "length"},
		{"empty stop ignored", nil, u32(2), []string{""}, []string{"w0", " w1"}, "length"},
		{"stop at the very start sends nothing", nil, nil, []string{"w0"}, nil, "stop"},
		{"custom tokens", []string{"a", "b"}, nil, nil, []string{"a", "b"}, "stop"},
		{"custom tokens under max_tokens", []string{"a", "b"}, u32(2), nil, []string{"a", "b"}, "stop"},
		{"custom tokens cut by max_tokens", []string{"a", "b", "c"}, u32(2), nil, []string{"a", "b"}, "length"},
		{"no custom tokens", []string{}, nil, nil, []string{}, "stop"},
		{"huge max_tokens is capped", nil, u32(1 << 31), nil, nil, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, finish := plan(tt.custom, tt.maxTokens, tt.stop)
			if tt.name == "huge max_tokens is capped" {
				if len(got) != maxDefaultTokens || finish != "stop" {
					t.Fatalf("got %d tokens, finish %q; want %d, stop", len(got), finish, maxDefaultTokens)
				}
				return
			}
			if !slices.Equal(got, tt.want) || finish != tt.wantFinish {
				t.Fatalf("plan = %q, %q; want %q, %q", got, finish, tt.want, tt.wantFinish)
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		chat    bool
		want    Received
		wantErr string
	}{
		{"stop as a string", `{"model":"m","prompt":"p","stop":"x"}`, false,
			Received{Model: "m", Prompt: "p", Stop: []string{"x"}}, ""},
		{"stop as an array, usage asked", `{"model":"m","messages":[{"role":"user","content":"hi"}],"stop":["a","b"],"stream":true,"stream_options":{"include_usage":true}}`, true,
			Received{Model: "m", Messages: []Message{{"user", "hi"}}, Stop: []string{"a", "b"}, Stream: true, IncludeUsage: true}, ""},
		{"empty prompt is a prompt", `{"model":"m","prompt":""}`, false, Received{Model: "m"}, ""},
		{"bad JSON", `{"model":`, true, Received{}, "could not parse"},
		{"no model", `{"prompt":"p"}`, false, Received{}, "model"},
		{"chat without messages", `{"model":"m","prompt":"p"}`, true, Received{}, "messages"},
		{"completion without prompt", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, false, Received{}, "prompt"},
		{"stop of the wrong type", `{"model":"m","prompt":"p","stop":5}`, false, Received{}, "stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeRequest([]byte(tt.body), tt.chat)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Model != tt.want.Model || got.Prompt != tt.want.Prompt || !slices.Equal(got.Messages, tt.want.Messages) ||
				!slices.Equal(got.Stop, tt.want.Stop) || got.Stream != tt.want.Stream || got.IncludeUsage != tt.want.IncludeUsage {
				t.Fatalf("decoded %+v, want %+v", got, tt.want)
			}
		})
	}
}
