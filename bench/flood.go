package bench

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// flood sends the request's queries round-robin to the first peer
// connected, Concurrency at a time, as fast as they are answered, until
// stop: an attacker that asks as much as the validator lets it. It counts
// the answers, the 4290 refusals and the bytes received.
func (c *child) flood(r Request) (Reply, error) {
	if len(c.peers) == 0 || len(r.Queries) == 0 {
		return Reply{}, errors.New("flood: no peer or no queries")
	}
	c.stop.Store(false)
	var answered, limited, failed, bytes atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range max(r.Concurrency, 1) {
		wg.Go(func() {
			for !c.stop.Load() {
				q := r.Queries[int(next.Add(1))%len(r.Queries)]
				b, err := node.Call(context.Background(), c.h, c.peers[0], lp.QueryProtocol, q, lp.MaxResponseSize, 10*time.Second)
				switch {
				case err != nil:
					failed.Add(1)
					time.Sleep(time.Millisecond) // a refused stream: do not spin
				case errorCode(b) == pb.ErrorCode_ERROR_CODE_RATE_LIMITED:
					limited.Add(1)
				default:
					answered.Add(1)
					bytes.Add(int64(len(b)))
				}
			}
		})
	}
	wg.Wait()
	rep := Reply{Messages: int(answered.Load()), Limited: int(limited.Load()), PublishErrs: int(failed.Load())}
	if n := answered.Load(); n > 0 {
		rep.Bytes = int(bytes.Load() / n)
	}
	return rep, nil
}

// errorCode reads a QueryResponse's error_code without decoding the rest:
// an attacker does not spend its CPU on the answers.
func errorCode(b []byte) pb.ErrorCode {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0
		}
		b = b[n:]
		if num == 3 && typ == protowire.VarintType {
			v, _ := protowire.ConsumeVarint(b)
			return pb.ErrorCode(v)
		}
		if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
			return 0
		}
		b = b[n:]
	}
	return 0
}
