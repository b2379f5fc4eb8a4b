package client

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	msmux "github.com/multiformats/go-multistream"

	lp "github.com/lloom/lloom/protocol"
)

// ErrNotValidator is a peer that does not answer the query protocol: an
// executor's address, or another libp2p program's.
var ErrNotValidator = errors.New("not a validator")

// permanent reports whether reaching a validator failed for a reason that
// waiting out the timeout would not cure: nothing listens at the address
// (a validator that restarts is back well after a command gives up), the
// address pins another identity, or the peer there does not answer the
// query protocol. A timeout, a reset or a dial backoff may heal and is
// retried.
func permanent(err error) bool {
	var mismatch sec.ErrPeerIDMismatch
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &mismatch)
}

// notValidator names a peer that does not speak the query protocol for
// what it is, instead of multistream's "protocols not supported".
func notValidator(err error) error {
	if errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
		return fmt.Errorf("%w: the peer there does not answer %s (an executor's address?)", ErrNotValidator, lp.QueryProtocol)
	}
	return err
}
