package audit

import (
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/auditrelay/auditrelay/config"
)

// Embedded is an in-process NATS server with JetStream on disk, for a
// single-host deployment and for `demo`.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts the server of auditrelay.nats.embedded and waits until
// it takes connections.
func StartEmbedded(cfg config.Embedded, log *slog.Logger) (*Embedded, error) {
	host, port, err := splitListen(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("auditrelay.nats.embedded.listen: %w", err)
	}
	srv, err := server.NewServer(&server.Options{
		ServerName: "auditrelay-embedded", Host: host, Port: port,
		JetStream: true, StoreDir: cfg.StoreDir, NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS server did not start on %s", cfg.Listen)
	}
	log.Info("embedded NATS server started", "listen", srv.ClientURL(), "storeDir", cfg.StoreDir)
	return &Embedded{srv: srv}, nil
}

func splitListen(listen string) (string, int, error) {
	host, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Server is the server, for an in-process connection.
func (e *Embedded) Server() *server.Server { return e.srv }

// Close shuts the server down and waits for it.
func (e *Embedded) Close() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
