// Package protocol owns lloom's wire contract: the protobuf schema and its
// generated code (package pb), the names (topic, protocol IDs, envelope
// domains), the varint framing used on streams, sealing and opening of signed
// envelopes, and every message check with its numeric error code.
//
// It depends on nothing else in lloom, so that any role, tool or other
// implementation's test harness can use it alone. docs/PROTOCOL.md is the
// prose account of the same contract.
package protocol
