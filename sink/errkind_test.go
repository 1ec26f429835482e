package sink

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/proxytest"
)

func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestErrorKind classifies real failures of real loopback servers.
func TestErrorKind(t *testing.T) {
	good := startTLSServer(t, "server", nil)
	wrongHost := startTLSServer(t, "wronghost-server", nil)
	mtls13 := startTLSServer(t, "server", requireClientCert(t))
	mtls12 := startTLSServer(t, "server", func(s *httptest.Server) {
		requireClientCert(t)(s)
		s.TLS.MaxVersion = 0x0303
	})
	authProxy := proxytest.StartHTTP(t, proxytest.Options{User: "alice", Password: "right"})
	denyProxy := proxytest.StartHTTP(t, proxytest.Options{Route: func(hostport string) string {
		if hostport == hostOf(good.URL) {
			return "" // 403
		}
		return hostport
	}})
	socks := proxytest.StartSOCKS5(t, proxytest.Options{User: "carol", Password: "right"})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	t.Cleanup(silent.Close)

	tests := []struct {
		name     string
		url      string
		trust    string
		proxy    config.Proxy
		deadline time.Duration
		want     string
	}{
		{"unknown authority", good.URL, "wrong-ca.pem", config.Proxy{}, 0, kindTLS},
		{"host name mismatch", wrongHost.URL, "ca.pem", config.Proxy{}, 0, kindTLS},
		{"client certificate required, TLS 1.3", mtls13.URL, "ca.pem", config.Proxy{}, 0, kindTLS},
		{"client certificate required, TLS 1.2", mtls12.URL, "ca.pem", config.Proxy{}, 0, kindTLS},
		{"proxy 407", good.URL, "ca.pem", proxyBlock(t, authProxy.Addr(), "http", "alice", "wrong"), 0, kindProxy},
		{"proxy 403", good.URL, "ca.pem", proxyBlock(t, denyProxy.Addr(), "http", "", ""), 0, kindProxy},
		{"SOCKS5 refuses auth", good.URL, "ca.pem", proxyBlock(t, socks.Addr(), "socks5", "carol", "wrong"), 0, kindProxy},
		{"proxy unreachable", good.URL, "ca.pem", proxyBlock(t, closedPort(t), "http", "", ""), 0, kindProxy},
		{"connection refused", "https://" + closedPort(t) + "/", "ca.pem", config.Proxy{}, 0, kindConnect},
		{"server never answers", silent.URL, "ca.pem", config.Proxy{}, 200 * time.Millisecond, kindTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wh := testWebhook(tt.url)
			wh.WS.SSL.TrustManager.Stores = trustStore(t, "PEM", tt.trust)
			wh.WS.Proxy = tt.proxy
			client, err := newClient(wh, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(client.CloseIdleConnections)
			err = failedRequest(client, tt.url, tt.deadline)
			t.Logf("%v", err)
			if got := errorKind(err); got != tt.want {
				t.Errorf("errorKind(%v) = %q, want %q", err, got, tt.want)
			}
		})
	}
}

// failedRequest sends a request and reads its body, where TLS 1.3 reports a
// rejected client certificate.
func failedRequest(client *http.Client, url string, deadline time.Duration) error {
	if deadline == 0 {
		deadline = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return errors.New("unexpected success: " + resp.Status)
}

func TestErrorKindSynthetic(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{nil, ""},
		{context.DeadlineExceeded, kindTimeout},
		{&proxyError{Proxy: "http://p:1", Status: "407 Proxy Authentication Required"}, kindProxy},
		{errors.New("dial tcp: lookup siem.invalid: no such host"), kindConnect},
	}
	for _, tt := range tests {
		if got := errorKind(tt.err); got != tt.want {
			t.Errorf("errorKind(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
