package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/pkg/feed"
	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

// watchFlags are `lloom client watch`'s flags.
type watchFlags struct {
	validators string
	model      string
	json       bool
	unverified bool
	timeout    time.Duration
	metrics    metricsFlags
}

func newWatchCommand(a *app) *cobra.Command {
	var wf watchFlags
	cmd := &cobra.Command{
		Use:   "watch",
		Short: "Follow a validator's registry as it changes (the change feed)",
		Long: `Follow the registry of the first validator that answers, as it changes:
executors added, updated (a new announcement, or verified), their load
changing, turning stale, recovering, and removed. It starts with a snapshot
of the executors, then prints one line per change until interrupted. After a
disconnect it reconnects and resumes where it was; a validator that can no
longer resume sends a fresh snapshot.

What it prints is the validator's view, as the validator's dashboard shows
it: use 'lloom client query' for executors' signed announcements.

--json prints one JSON object per line (kind, version, at_ms, executor,
added_models, dropped_models), the shape of the validator's HTTP API.`,
		Example: `  lloom client watch --validator "$VALIDATOR_ADDRESS"
  lloom client watch --model llama3.2:3b --json | jq -c '{kind, peer: .executor.peer_id}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wf.model != "" && !lp.ValidModelID(wf.model) {
				return usagef("--model %q: want 1-128 characters of [A-Za-z0-9._:/@-]", wf.model)
			}
			cf := clientFlags{validators: wf.validators, timeout: wf.timeout, metrics: &wf.metrics}
			return withClient(a, &cf, func(ctx context.Context, c *client.Client) error {
				p := &watchPrinter{w: a.stdout, json: wf.json}
				err := c.Watch(ctx, client.WatchOptions{Model: wf.model, IncludeUnverified: wf.unverified}, p.print)
				if ctx.Err() != nil {
					return nil // interrupted: the way a watch ends
				}
				return err
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&wf.validators, "validator", "", "validators to follow, comma-separated: multiaddr with /p2p/, or host:port; the first that answers is followed, the next ones if it fails (env VALIDATOR_ADDRESS)")
	fs.StringVar(&wf.model, "model", "", "only executors serving this model")
	fs.BoolVar(&wf.json, "json", false, "print one JSON object per line, for scripts")
	fs.BoolVar(&wf.unverified, "include-unverified", false, "include executors the validator has not reached yet (liveness check pending or failed)")
	durationVar(fs, &wf.timeout, "timeout", 10*time.Second, "time to reach a validator")
	wf.metrics.register(fs)
	return cmd
}

// watchPrinter prints events as they come.
type watchPrinter struct {
	w        io.Writer
	json     bool
	snapshot int // executors in the snapshot being printed
}

func (p *watchPrinter) print(_ int, ev *pb.WatchEvent) error {
	if p.json {
		b, err := json.Marshal(feed.EventOf(ev))
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	at := time.UnixMilli(ev.GetAtMs()).Format("15:04:05")
	kind := lp.WatchKindName(ev.GetKind())
	var err error
	switch ev.GetKind() {
	case pb.WatchEventKind_WATCH_EVENT_KIND_SNAPSHOT:
		p.snapshot++
		_, err = fmt.Fprintf(p.w, "%s  %-9s  %s\n", at, kind, executorLine(ev.GetExecutor()))
	case pb.WatchEventKind_WATCH_EVENT_KIND_SYNCED:
		what := "resumed"
		if ev.GetSnapshot() {
			what = fmt.Sprintf("snapshot of %d executor(s)", p.snapshot)
		}
		p.snapshot = 0
		_, err = fmt.Fprintf(p.w, "%s  %-9s  %s at version %d; following changes\n", at, kind, what, ev.GetVersion())
	case pb.WatchEventKind_WATCH_EVENT_KIND_ERROR:
		_, err = fmt.Fprintf(p.w, "%s  %-9s  the validator ended the feed: %s (code %d)\n", time.Now().Format("15:04:05"), kind, ev.GetErrorMessage(), int32(ev.GetErrorCode()))
	default:
		line := executorLine(ev.GetExecutor())
		if a := ev.GetAddedModels(); len(a) > 0 && ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED {
			line += "  added " + strings.Join(a, ",")
		}
		if d := ev.GetDroppedModels(); len(d) > 0 && ev.GetKind() == pb.WatchEventKind_WATCH_EVENT_KIND_UPDATED {
			line += "  dropped " + strings.Join(d, ",")
		}
		_, err = fmt.Fprintf(p.w, "%s  %-9s  %s\n", at, kind, line)
	}
	return err
}

// executorLine is an executor on one line: id, status, verification and
// each model's load (active+queued/capacity) and price (in/out wei).
func executorLine(x *pb.WatchedExecutor) string {
	if x == nil {
		return "-"
	}
	e := feed.ExecutorOf(x)
	checked := "verified"
	if !e.Verified {
		checked = "unverified"
	}
	models := make([]string, len(e.Models))
	for i, m := range e.Models {
		models[i] = fmt.Sprintf("%s %d+%d/%d %s/%s", m.ModelID, m.Active, m.Queued, m.Capacity, m.InputTokenPriceWei, m.OutputTokenPriceWei)
	}
	return fmt.Sprintf("%s  %-10s  %-10s  %s", e.PeerID, e.Status, checked, strings.Join(models, ", "))
}
