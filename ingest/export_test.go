package ingest

import (
	"net/http"
)

// OnHandle lets a test know that a request has entered the handler: past
// the point where net/http drops a request whose head it read as the
// shutdown began.
func (s *Server) OnHandle(f func()) {
	h := s.srv.Handler
	s.srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f()
		h.ServeHTTP(w, r)
	})
}
