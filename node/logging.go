package node

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/rs/zerolog"
	slogzerolog "github.com/samber/slog-zerolog/v2"
	"golang.org/x/term"
)

// LogConfig selects the log level and format.
type LogConfig struct {
	Level  string    // trace, debug, info, warn, error
	Format string    // console (for people) or json (for machines)
	Out    io.Writer // default os.Stderr
}

// NewLogger builds the zerolog logger every component derives its own from.
func NewLogger(cfg LogConfig) (zerolog.Logger, error) {
	out := cfg.Out
	if out == nil {
		out = os.Stderr
	}
	lvl, err := zerolog.ParseLevel(strings.ToLower(strings.TrimSpace(cfg.Level)))
	if err != nil || cfg.Level == "" {
		return zerolog.Nop(), fmt.Errorf("log level %q: want trace, debug, info, warn or error", cfg.Level)
	}
	switch cfg.Format {
	case "", "console":
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly, NoColor: !isTerminal(out)}
	case "json":
	default:
		return zerolog.Nop(), fmt.Errorf("log format %q: want console or json", cfg.Format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// BridgeLibp2pLogs sends go-libp2p's slog output into log: errors only at
// lloom's info level and above (lloom reports what matters itself, such as
// a port in use, in its own words), warnings too at debug, and everything
// at trace. It sets process-wide state and must run before the first host
// is built.
func BridgeLibp2pLogs(log zerolog.Logger) {
	lvl := slog.LevelError
	switch {
	case log.GetLevel() <= zerolog.TraceLevel:
		lvl = slog.LevelDebug
	case log.GetLevel() <= zerolog.DebugLevel:
		lvl = slog.LevelWarn
	}
	l := log.With().Str("component", "libp2p").Logger()
	h := slogzerolog.Option{Level: lvl, Logger: &l}.NewZerologHandler()
	gologshim.SetDefaultHandler(h)
	slog.SetDefault(slog.New(h))
}
