package relay

import (
	"io"
	"log/slog"

	"github.com/auditrelay/auditrelay/config"
)

// NewLogger makes the sidecar's logger from auditrelay.log.
func NewLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
