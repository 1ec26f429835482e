package ingest

import (
	"net"
	"net/http"
)

// OnConnState lets a test see the listener's connections change state
// (set before Run).
func (s *Server) OnConnState(f func(net.Conn, http.ConnState)) { s.srv.ConnState = f }
