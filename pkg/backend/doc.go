// Package backend is the HTTP client an executor uses to talk to its LLM
// engine through the OpenAI-compatible API that Ollama, LM Studio, vLLM,
// llama.cpp's server and OpenAI itself speak. It lists models and streams
// chat and text completions; it knows nothing of libp2p or of lloom's wire
// format.
//
// A Client is bound to one base URL ending in /v1 (for example
// http://127.0.0.1:11434/v1): models are listed with GET {base}/models, a
// Request with Messages goes to POST {base}/chat/completions and one with a
// Prompt to POST {base}/completions. Every completion is streamed with
// stream_options.include_usage, and the answer's text reaches the caller one
// delta at a time as the server-sent events arrive.
//
// Failures come back as *Error, whose Kind is the executor's wire mapping
// (Failed → 6003, Overloaded → 6002, NotFound → 6001, Invalid → 6004) and
// whose Unavailable field says whether the model should be announced as
// unavailable until the backend answers again. Two failures are not an
// *Error: a cancelled context returns the context's error, and an error
// returned by the caller's delta callback comes back wrapped as it was.
package backend
