package gateway

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

// The chat page at /: plain HTML, CSS and JavaScript embedded in the
// binary, talking only to this gateway's own API (GET /v1/models, POST
// /v1/chat/completions, streamed), showing for every answer the executor
// that wrote it and its signed receipt. The page itself needs no API key;
// with one set, the page asks for it and sends it like any client.
//
//go:embed chat
var chatFiles embed.FS

const chatCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (g *Gateway) chatPage(w http.ResponseWriter, _ *http.Request) {
	serveChatFile(w, "index.html")
}

func (g *Gateway) chatAsset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if _, err := fs.Stat(chatFiles, "chat/"+name); err != nil || name == "index.html" || path.Base(name) != name {
		writeError(w, http.StatusNotFound, "invalid_request_error", "not_found", "no page asset "+r.URL.Path)
		return
	}
	serveChatFile(w, name)
}

func serveChatFile(w http.ResponseWriter, name string) {
	b, err := chatFiles.ReadFile("chat/" + name)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "api_error", "internal", "page asset missing: "+name)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", chatCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
