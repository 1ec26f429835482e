package sink

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/config"
)

// BenchmarkAttempt is one delivery attempt on the hot path: request built
// from the parsed URL, static headers, webhook-id, POST over a kept-alive
// loopback connection, outcome classified, body drained, metrics.
func BenchmarkAttempt(b *testing.B) {
	for _, signed := range []bool{false, true} {
		name := "plain"
		if signed {
			name = "signed"
		}
		b.Run(name, func(b *testing.B) { benchAttempt(b, signed) })
	}
}

func benchAttempt(b *testing.B, signed bool) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(srv.Close)
	wh := config.DefaultWebhook()
	wh.Name, wh.KeyPath, wh.URL = "bench", "webhooks.bench", srv.URL+"/hook"
	if signed {
		wh.Signing.Secrets = []config.Secret{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}
	}
	w, err := New(wh, Options{Stream: "THEHIVE_AUDIT", Version: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"operation":"Update","objectType":"case_task","objectId":"t1","rootId":"r1","details":{"d":"` + strings.Repeat("x", 1400) + `"}}`)
	id := WebhookID("THEHIVE_AUDIT", "bench", 1, 1)
	b.SetBytes(int64(len(body)))
	d := w.deadline(context.Background()) // a delivery goroutine's, kept across attempts
	defer d.close()
	b.ReportAllocs()
	for b.Loop() {
		if res := w.attemptWithin(d, id, body, 1); res.Outcome != Delivered {
			b.Fatalf("attempt: %v %s %v", res.Outcome, res.Status, res.Err)
		}
	}
}
