package validator

import (
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
)

// The dashboard: plain HTML, CSS and JavaScript, embedded in the binary,
// fetching nothing from anywhere but this validator. It takes a snapshot
// and the changes after it from /api/v1/events and keeps itself current
// from them, without reloading.
//
//go:embed dashboard
var dashboardFiles embed.FS

// pageCSP lets the page load only its own assets and talk only to the
// validator.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (a *httpAPI) page(w http.ResponseWriter, _ *http.Request) {
	serveAsset(w, "index.html")
}

func (a *httpAPI) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if name == "index.html" || path.Base(name) != name {
		a.notFound(w, r)
		return
	}
	if _, err := fs.Stat(dashboardFiles, "dashboard/"+name); err != nil {
		a.notFound(w, r)
		return
	}
	serveAsset(w, name)
}

func serveAsset(w http.ResponseWriter, name string) {
	b, err := dashboardFiles.ReadFile("dashboard/" + name)
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", "dashboard asset missing: "+name)
		return
	}
	h := w.Header()
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
