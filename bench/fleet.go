package bench

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/lloom/lloom/node"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// The simulated network: executor i serves ModelsPerExecutor consecutive
// models of NumModels, so that at 10,000 executors each model has 500.
const (
	NumModels         = 100
	ModelsPerExecutor = 5
)

// ModelID is the id of model i (mod NumModels).
func ModelID(i int) string { return fmt.Sprintf("model-%03d:7b-instruct-q4", i%NumModels) }

// Descriptor is what an ollama or vLLM executor would announce for a model;
// backends and context lengths alternate so that filters have work to do.
func Descriptor(exec int, id string) *pb.ModelDescriptor {
	backend, ctx := "ollama", uint32(8192)
	if (exec/20)%2 == 1 {
		backend, ctx = "vllm", 32768
	}
	return &pb.ModelDescriptor{
		ModelId:          id,
		BackendType:      backend,
		MaxContextLength: ctx,
		Features:         []string{"chat", "completion"},
		Architecture:     "llama",
		ModelSize:        "7B",
		Quantization:     "Q4_K_M",
		Pricing:          &pb.Pricing{InputTokenPriceWei: "1000000000", OutputTokenPriceWei: "2000000000"},
		Available:        true,
		Capacity:         4,
	}
}

// Executor is a simulated executor: a real Ed25519 identity and the
// messages it signs. Its methods are not safe for concurrent use; distinct
// executors may sign concurrently.
type Executor struct {
	Index  int
	Key    crypto.PrivKey
	ID     peer.ID
	Models []*pb.ModelDescriptor
	AnnSeq uint64 // seq of the last announcement signed
	hbSeq  uint64
}

// NewFleet derives n executors from seed: the same seed gives the same
// keys in every process, so that a parent and its load generator agree on
// the identities without exchanging them.
func NewFleet(n int, seed uint64) []*Executor {
	xs := make([]*Executor, n)
	Parallel(n, func(i int) {
		var in [16]byte
		binary.BigEndian.PutUint64(in[:8], seed)
		binary.BigEndian.PutUint64(in[8:], uint64(i))
		s := sha256.Sum256(append([]byte("lloom-bench-key"), in[:]...))
		key, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(s[:]))
		if err != nil {
			panic(err) // a 64-byte key always unmarshals
		}
		id, err := peer.IDFromPrivateKey(key)
		if err != nil {
			panic(err)
		}
		models := make([]*pb.ModelDescriptor, ModelsPerExecutor)
		for k := range models {
			models[k] = Descriptor(i, ModelID(i*ModelsPerExecutor+k))
		}
		xs[i] = &Executor{Index: i, Key: key, ID: id, Models: models}
	})
	return xs
}

// nextSeq is unix nanoseconds, or one more than prev if that is not larger,
// as lloom executors number their messages.
func nextSeq(prev uint64, now time.Time) uint64 {
	return max(prev+1, uint64(now.UnixNano()))
}

// Announce signs the executor's next announcement of its models (none for
// a REMOVAL) and returns the envelope and the gossip message holding it.
func (x *Executor) Announce(kind pb.AnnouncementKind, now time.Time) (env, msg []byte, err error) {
	x.AnnSeq = nextSeq(x.AnnSeq, now)
	a := &pb.Announcement{
		ExecutorId:      []byte(x.ID),
		Seq:             x.AnnSeq,
		Kind:            kind,
		IssuedAtMs:      now.UnixMilli(),
		ProtocolVersion: lp.Version,
		AgentVersion:    "lloom-bench",
	}
	if kind != pb.AnnouncementKind_ANNOUNCEMENT_KIND_REMOVAL {
		a.Models = x.Models
	}
	if env, err = lp.SealAnnouncement(a, x.Key); err != nil {
		return nil, nil, err
	}
	msg, err = node.EncodeAnnouncement(env)
	return env, msg, err
}

// Heartbeat signs the executor's next heartbeat, naming its current
// announcement, with a load that changes from one heartbeat to the next.
func (x *Executor) Heartbeat(now time.Time) (msg []byte, err error) {
	x.hbSeq = nextSeq(x.hbSeq, now)
	loads := make([]*pb.ModelLoad, len(x.Models))
	for k, m := range x.Models {
		loads[k] = &pb.ModelLoad{ModelId: m.GetModelId(), Active: uint32(x.hbSeq>>10+uint64(k)) % 4, Queued: uint32(x.hbSeq>>12) % 2}
	}
	h := &pb.Heartbeat{
		ExecutorId:      []byte(x.ID),
		Seq:             x.hbSeq,
		AnnouncementSeq: x.AnnSeq,
		IssuedAtMs:      now.UnixMilli(),
		Load:            &pb.Load{Models: loads},
	}
	env, err := lp.SealHeartbeat(h, x.Key)
	if err != nil {
		return nil, err
	}
	return node.EncodeHeartbeat(env)
}

// Messages pre-signs, for every executor, an INITIAL announcement and then
// rounds heartbeats, all stamped now, and returns the gossip messages in
// publishing order: every announcement first, then the heartbeats round by
// round, so that no heartbeat overtakes its executor's announcement.
func Messages(xs []*Executor, rounds int, now time.Time) ([][]byte, error) {
	out := make([][]byte, len(xs)*(1+rounds))
	var mu sync.Mutex
	var first error
	Parallel(len(xs), func(i int) {
		x := xs[i]
		_, msg, err := x.Announce(pb.AnnouncementKind_ANNOUNCEMENT_KIND_INITIAL, now)
		out[i] = msg
		for r := 0; r < rounds && err == nil; r++ {
			out[(1+r)*len(xs)+i], err = x.Heartbeat(now)
		}
		if err != nil {
			mu.Lock()
			first = err
			mu.Unlock()
		}
	})
	return out, first
}

// Parallel runs f(0..n-1) on every core.
func Parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				f(i)
			}
		})
	}
	wg.Wait()
}
