package validator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/lloom/lloom/pkg/feed"
)

// GET /api/v1/events: the change feed as server-sent events. The headers go
// out at once; then a "snapshot" event (the view's executors and the
// validator's figures) or, for a client that comes back with Last-Event-ID
// (a browser's EventSource does by itself) or ?after=VERSION still in the
// history, a "resumed" event; then one "change" event per change, its id
// the change's version. Every statsEvery a "stats" event carries the
// figures and the executors seen since the last one (heartbeats that
// change nothing are no change); every Config.EventKeepAlive a ":" comment keeps
// idle proxies from closing the stream. A client that falls out of the
// history gets a "reset" event and the stream ends; coming back, it gets a
// fresh snapshot.
//
// Query parameters: model= (only executors serving it),
// include_unverified=true (also executors not yet verified).

// DefaultEventKeepAlive is Config.EventKeepAlive's default: shorter than
// the idle timeouts of common proxies (nginx's 60 s).
const DefaultEventKeepAlive = 15 * time.Second

const (
	statsEvery = 2 * time.Second
	// maxSeen bounds the executors one stats event names as seen.
	maxSeen = 20000
)

func (a *httpAPI) events(w http.ResponseWriter, r *http.Request) {
	v := a.v
	vw, err := viewParams(r)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	after, err := afterParam(r)
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	leave, err := v.feed.join("")
	if err != nil {
		w.Header().Set("Retry-After", "5")
		writeAPIError(w, http.StatusTooManyRequests, "too_many_subscribers", "the change feed has its maximum of subscribers; try again later")
		return
	}
	defer leave()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
	if _, err := io.WriteString(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}

	now := v.cfg.Now()
	sub, snapshot, resumed := subscribe(v.reg, vw, after, now)
	if resumed {
		err = sse(w, "resumed", sub.version, map[string]any{"version": strconv.FormatUint(sub.version, 10)})
	} else {
		xs := make([]feed.Executor, len(snapshot))
		for i := range snapshot {
			xs[i] = feed.ExecutorOf(watched(&snapshot[i]))
		}
		err = sse(w, "snapshot", sub.version, map[string]any{
			"version": strconv.FormatUint(sub.version, 10), "executors": xs, "stats": a.statsOf(now),
		})
	}
	if err != nil || rc.Flush() != nil {
		return
	}
	v.feed.sent(1)

	seenSince := now
	every := v.cfg.EventKeepAlive
	if every <= 0 {
		every = DefaultEventKeepAlive
	}
	keepAlive := time.NewTicker(every)
	defer keepAlive.Stop()
	stats := time.NewTicker(statsEvery)
	defer stats.Stop()
	for {
		evs, wake, err := sub.poll(v.cfg.Now())
		if err != nil {
			v.feed.cutOff(cutBehind)
			_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
			_ = sse(w, "reset", 0, map[string]any{"error": map[string]any{"code": "too_slow", "message": errTooSlow(v.cfg.Registry.History).Error()}})
			_ = rc.Flush()
			return
		}
		if len(evs) > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
			for _, ev := range evs {
				if err = sse(w, "change", ev.GetVersion(), feed.EventOf(ev)); err != nil {
					break
				}
			}
			if err != nil || rc.Flush() != nil {
				v.feed.cutOff(cutWriting)
				return
			}
			v.feed.sent(len(evs))
			continue
		}
		select {
		case <-wake:
			continue
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
			_, err = io.WriteString(w, ": keepalive\n\n")
		case <-stats.C:
			now := v.cfg.Now()
			seen := map[string]int64{}
			for _, s := range v.reg.SeenSince(seenSince, maxSeen) {
				seen[s.ID.String()] = s.LastSeen.UnixMilli()
			}
			seenSince = now
			_ = rc.SetWriteDeadline(time.Now().Add(watchWriteTimeout))
			err = sse(w, "stats", 0, map[string]any{"stats": a.statsOf(now), "seen": seen})
		}
		if err != nil || rc.Flush() != nil {
			return
		}
	}
}

// afterParam is the version to resume after: Last-Event-ID, else ?after=.
func afterParam(r *http.Request) (uint64, error) {
	s := r.Header.Get("Last-Event-ID")
	name := "Last-Event-ID"
	if s == "" {
		s, name = r.URL.Query().Get("after"), "after"
	}
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a version number", name, s)
	}
	return n, nil
}

// sse writes one event; id 0 leaves the client's last event id as it is.
func sse(w io.Writer, event string, id uint64, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	if id != 0 {
		_, err = fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", event, id, b)
	} else {
		_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	return err
}
