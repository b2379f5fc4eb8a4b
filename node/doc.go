// Package node builds what every lloom role shares: the libp2p host
// (identity, transports, security, muxer, listen addresses), bootstrap
// address forms and the reconnecting dialer, the GossipSub router and the
// lloom topic with its validator, request/response streams, and logging.
//
// The roles themselves live in node/validator, node/executor and
// node/client.
package node
