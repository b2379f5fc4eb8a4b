// Package backendtest provides Fake, an in-process OpenAI-compatible LLM
// server for tests: it stands in for Ollama or vLLM behind an executor, and
// injects the faults a real backend shows (errors, refused connections, cut
// streams, slowness, saturation) on demand.
//
// The fake speaks GET /v1/models, POST /v1/chat/completions and POST
// /v1/completions with OpenAI's shapes, streamed (one flushed server-sent
// event per token, then data: [DONE]) or not. Its default answer is
// deterministic: the words "w0 w1 w2 ..." (one token each), so a test knows
// the text, the finish reason and the usage without configuring anything.
//
// It deliberately does not import package backend, so that a bug in the
// client's types cannot hide itself in the fake's.
package backendtest
