// Package llm holds lloom's integration tests against a real LLM engine:
// Ollama v0.6.5 serving the tiny generated model of tools/testmodel (see
// package ollamatest). They run requests through lloom in-process
// (validator, executor and client on loopback) and through the real
// `lloom` binary, and assert structure, never meaning: tokens counted,
// stop and max_tokens honoured, streaming incremental, parameters reaching
// the engine, cancellation reaching the engine, a dead engine reported and
// recovered from.
//
// The tests carry the build tag "llm" and need LLOOM_OLLAMA_BIN; run them
// with
//
//	make test-llm
package llm
