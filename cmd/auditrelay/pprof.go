package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// pprofEnv names the address of a debug-only profiling listener (Go's
// net/http/pprof handlers under /debug/pprof/). Unset, nothing listens. It
// is for measuring auditrelay under load; never expose it: it has no
// authentication.
const pprofEnv = "AUDITRELAY_PPROF_LISTEN"

// startPprof listens on addr (from pprofEnv) when it is set.
func startPprof(addr string, log *slog.Logger) {
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("profiling listener not started", "env", pprofEnv, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Warn("debug profiling listener is on: do not expose it", "addr", ln.Addr().String(), "env", pprofEnv)
	go func() { _ = http.Serve(ln, mux) }()
}
