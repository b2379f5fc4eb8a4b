package backend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Timeouts of the HTTP client New builds when given none. There is no
// overall timeout: an answer streams for as long as the model writes.
const (
	// DialTimeout bounds connecting to the backend.
	DialTimeout = 10 * time.Second
	// ResponseHeaderTimeout bounds the wait for the response headers.
	// Ollama and others send them with the first token, after loading the
	// model, which for a large model on a slow disk takes minutes.
	ResponseHeaderTimeout = 5 * time.Minute
)

// Client talks to one OpenAI-compatible backend. It is safe for concurrent
// use.
type Client struct {
	base   *url.URL // no trailing slash
	apiKey string
	hc     *http.Client
	now    func() time.Time // for Retry-After dates
}

// New returns a client for the API at baseURL, an http or https URL with a
// host and a path, usually ending in /v1 (http://127.0.0.1:11434/v1).
// apiKey, when not empty, is sent as a bearer token. hc nil means a client
// with DialTimeout and ResponseHeaderTimeout but no overall timeout.
func New(baseURL, apiKey string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBaseURL, baseURL, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w %q: scheme must be http or https", ErrBaseURL, baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("%w %q: no host", ErrBaseURL, baseURL)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("%w %q: must not have a query or fragment", ErrBaseURL, baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if u.Path == "" {
		return nil, fmt.Errorf("%w %q: no path; OpenAI-compatible APIs live under /v1 (did you mean %s/v1?)",
			ErrBaseURL, baseURL, strings.TrimRight(baseURL, "/"))
	}
	if hc == nil {
		hc = defaultHTTPClient()
	}
	return &Client{base: u, apiKey: apiKey, hc: hc, now: time.Now}, nil
}

// BaseURL returns the base URL without a trailing slash, its password (if
// any) redacted, for logs.
func (c *Client) BaseURL() string { return c.base.Redacted() }

// maxIdleConns bounds the idle connections kept to the backend.
const maxIdleConns = 1024

func defaultHTTPClient() *http.Client {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t.DialContext = (&net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = DialTimeout
	t.ResponseHeaderTimeout = ResponseHeaderTimeout
	// An executor runs up to capacity streams to the same backend at once
	// (hundreds with a fast engine); keep their connections for the next
	// requests instead of redialling after every burst.
	t.MaxIdleConns = maxIdleConns
	t.MaxIdleConnsPerHost = maxIdleConns
	return &http.Client{Transport: t}
}

// do sends one request to {base}{path}. A transport failure comes back
// classified (or as ctx's error when ctx ended); a non-2xx status is left to
// the caller, with the body open.
func (c *Client) do(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	u := *c.base
	u.Path += path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, failed(err.Error(), err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	if c.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, transportError(ctx, err)
	}
	return resp, nil
}

// transportError returns ctx's error when ctx has ended (the caller gave
// up; not the backend's fault), else a KindFailed *Error.
func transportError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("backend: %w", ctxErr)
	}
	return failed(err.Error(), err)
}
