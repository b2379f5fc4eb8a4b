// Package gateway is lloom's OpenAI-compatible HTTP server: GET /v1/models,
// POST /v1/chat/completions and POST /v1/completions, streamed (server-sent
// events in OpenAI's chunk format) or not, routed over the lloom network
// with the client role (verified announcements, power of two choices,
// failover before the first token, verified receipts). Every answer names
// its executor and carries its signed receipt (DESIGN §9).
package gateway
