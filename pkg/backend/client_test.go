package backend_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/lloom/lloom/pkg/backend"
	"github.com/lloom/lloom/pkg/backend/backendtest"
)

func TestNew(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{"http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1", ""},
		{"https://api.openai.com/v1/", "https://api.openai.com/v1", ""},
		{" http://host:1234/api/v1// ", "http://host:1234/api/v1", ""},
		{"http://user:secret@host/v1", "http://user:xxxxx@host/v1", ""},
		{"http://127.0.0.1:11434", "", "did you mean http://127.0.0.1:11434/v1"},
		{"http://127.0.0.1:11434/", "", "no path"},
		{"ftp://host/v1", "", "scheme"},
		{"127.0.0.1:11434/v1", "", ""}, // parses with scheme "127.0.0.1"
		{"http:///v1", "", "no host"},
		{"http://host/v1?key=x", "", "query"},
		{"http://host/v1#x", "", "fragment"},
		{"http://[::1/v1", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		c, err := backend.New(tt.in, "", nil)
		if tt.want != "" {
			if err != nil || c.BaseURL() != tt.want {
				t.Errorf("New(%q): %v, %v; want base %q", tt.in, c, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, backend.ErrBaseURL) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("New(%q) err = %v, want ErrBaseURL mentioning %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestModels(t *testing.T) {
	f := backendtest.New(t)
	c := newClient(t, f.URL(), "")
	got, err := c.Models(t.Context())
	if err != nil || len(got) != 1 || got[0].ID != "test-model" || got[0].OwnedBy != "backendtest" {
		t.Fatalf("Models = %+v, %v; want the fake's default test-model", got, err)
	}
	f.SetModels("llama3.2:3b", "qwen3:8b", "gemma3")
	got, err = c.Models(t.Context())
	ids := make([]string, len(got))
	for i, m := range got {
		ids[i] = m.ID
	}
	if err != nil || !slices.Equal(ids, []string{"llama3.2:3b", "qwen3:8b", "gemma3"}) {
		t.Fatalf("Models = %q, %v; want the three in order", ids, err)
	}
}

func TestModelsOddLists(t *testing.T) {
	tests := []struct {
		name, body string
		want       []backend.Model
		wantErr    bool
	}{
		{"empty ids skipped", `{"object":"list","data":[{"id":""},{"id":"a","owned_by":"me"}]}`, []backend.Model{{ID: "a", OwnedBy: "me"}}, false},
		{"null data", `{"object":"list","data":null}`, []backend.Model{}, false},
		{"vLLM's max_model_len is the context length", `{"object":"list","data":[{"id":"m","max_model_len":32768}]}`, []backend.Model{{ID: "m", ContextLength: 32768}}, false},
		{"context_length and max_context_length are read too", `{"data":[{"id":"a","context_length":4096},{"id":"b","max_context_length":8192}]}`, []backend.Model{{ID: "a", ContextLength: 4096}, {ID: "b", ContextLength: 8192}}, false},
		{"a context length that is no whole uint32 is unknown", `{"data":[{"id":"a","max_model_len":-1},{"id":"b","max_model_len":1.5},{"id":"c","max_model_len":1e12}]}`, []backend.Model{{ID: "a"}, {ID: "b"}, {ID: "c"}}, false},
		{"not JSON", `<html>`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, serve(t, status(200, nil, tt.body)), "")
			got, err := c.Models(t.Context())
			if tt.wantErr {
				if e := asError(t, err); e.Kind != backend.KindFailed {
					t.Fatalf("kind %v, want failed", e.Kind)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("Models = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestModelsErrors(t *testing.T) {
	f := backendtest.New(t, backendtest.WithAPIKey("sk-test"))
	_, err := newClient(t, f.URL(), "").Models(t.Context())
	if e := asError(t, err); e.Status != 401 || e.Unavailable || !strings.Contains(e.Message, "Incorrect API key") {
		t.Fatalf("no key: %+v; want 401, not unavailable, with the backend's message", e)
	}
	if _, err := newClient(t, f.URL(), "sk-test").Models(t.Context()); err != nil {
		t.Fatalf("with the key: %v", err)
	}
	f.SetFail(http.StatusServiceUnavailable, "", "")
	_, err = newClient(t, f.URL(), "sk-test").Models(t.Context())
	if e := asError(t, err); e.Kind != backend.KindFailed || e.Status != 503 || !e.Unavailable {
		t.Fatalf("503: %+v; want failed and unavailable", e)
	}
	f.SetFail(0, "", "")
	f.SetDown(true)
	_, err = newClient(t, f.URL(), "sk-test").Models(t.Context())
	if e := asError(t, err); e.Kind != backend.KindFailed || e.Status != 0 || !e.Unavailable {
		t.Fatalf("down: %+v; want a transport failure marking the model unavailable", e)
	}
}

func TestAuthorizationHeader(t *testing.T) {
	f := backendtest.New(t)
	for _, key := range []string{"sk-secret", ""} {
		f.ResetStats()
		if _, err := newClient(t, f.URL(), key).Stream(t.Context(), chatReq("test-model", "hi"), nil); err != nil {
			t.Fatal(err)
		}
		want := ""
		if key != "" {
			want = "Bearer " + key
		}
		if got := f.Requests()[0].Authorization; got != want {
			t.Errorf("key %q: Authorization %q, want %q", key, got, want)
		}
	}
}
