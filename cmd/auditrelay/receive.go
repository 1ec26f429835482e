package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

func cmdReceive(ctx context.Context, args []string, e *env) error {
	fs := flags("receive", e)
	listen := fs.String("listen", "127.0.0.1:8080", "address to listen on")
	token := fs.String("token", "", "require Authorization: Bearer <token>")
	cert := fs.String("tls-cert", "", "serve HTTPS with this certificate (PEM)")
	key := fs.String("tls-key", "", "and this key (PEM)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*cert == "") != (*key == "") {
		return usageError{errors.New("-tls-cert and -tls-key go together")}
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return usageError{err}
	}
	srv := &http.Server{Handler: &receiver{token: *token, out: e.stdout}, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(e.stderr, "receiving on %s\n", l.Addr())
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if *cert != "" {
		err = srv.ServeTLS(l, *cert, *key)
	} else {
		err = srv.Serve(l)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// receiver is the reference webhook receiver of SPEC §3: it prints each
// payload, one line per request.
type receiver struct {
	token string
	out   io.Writer
	mu    sync.Mutex
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rc.token != "" && !bearer(r, rc.token) {
		reply(w, http.StatusUnauthorized, "error", "missing or wrong bearer token")
		return
	}
	body, err := readBody(r)
	if err != nil {
		reply(w, http.StatusBadRequest, "error", err.Error())
		return
	}
	if !json.Valid(body) {
		reply(w, http.StatusBadRequest, "error", "body is not JSON")
		return
	}
	rc.mu.Lock()
	fmt.Fprintf(rc.out, "%s %s\n", r.URL.Path, bytes.TrimSpace(body))
	rc.mu.Unlock()
	reply(w, http.StatusOK, "message", "received")
}

func bearer(r *http.Request, token string) bool {
	got := []byte(r.Header.Get("Authorization"))
	return subtle.ConstantTimeCompare(got, []byte("Bearer "+token)) == 1
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = http.MaxBytesReader(nil, r.Body, 64<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(rd)
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

func reply(w http.ResponseWriter, code int, key, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{key: msg})
}
