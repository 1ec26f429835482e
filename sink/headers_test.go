package sink

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/auditrelay/auditrelay/config"
)

func headerWebhook(mod func(*config.Webhook)) *config.Webhook {
	wh := config.DefaultWebhook()
	wh.Name, wh.KeyPath, wh.URL = "siem", "webhooks.siem", "https://siem.example.org/hooks/thehive"
	if mod != nil {
		mod(&wh)
	}
	return &wh
}

func TestStaticHeadersAuthorization(t *testing.T) {
	tests := []struct {
		name    string
		auth    config.Auth
		headers map[string]string
		want    string // "" for absent
	}{
		{"none", config.Auth{Type: "none"}, nil, ""},
		{"zero value", config.Auth{}, nil, ""},
		{"basic", config.Auth{Type: "basic", Username: "thehive", Password: "s3cr3t:pa$$"}, nil, "Basic dGhlaGl2ZTpzM2NyM3Q6cGEkJA=="},
		{"basic, empty password", config.Auth{Type: "basic", Username: "thehive"}, nil, "Basic dGhlaGl2ZTo="},
		{"bearer", config.Auth{Type: "bearer", Key: "eyJhbGciOi.tok"}, nil, "Bearer eyJhbGciOi.tok"},
		{"key sent as is", config.Auth{Type: "key", Key: "Token abc123"}, nil, "Token abc123"},
		{"none, from headers", config.Auth{Type: "none"}, map[string]string{"authorization": "Splunk 1234"}, "Splunk 1234"},
		{"auth wins over headers", config.Auth{Type: "bearer", Key: "k"}, map[string]string{"Authorization": "Splunk 1234"}, "Bearer k"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := staticHeaders(headerWebhook(func(wh *config.Webhook) { wh.Auth, wh.Headers = tt.auth, tt.headers }), "1.2.3")
			got, present := h["Authorization"]
			if tt.want == "" {
				if present {
					t.Errorf("Authorization = %q, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("Authorization = %q, want [%q]", got, tt.want)
			}
		})
	}
}

func TestStaticHeaders(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*config.Webhook)
		want http.Header
	}{
		{"defaults", nil, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"auditrelay/1.2.3"},
		}},
		{"ws.useragent and gzip", func(wh *config.Webhook) {
			wh.WS.UserAgent, wh.WS.CompressionEnabled = "TheHive/3.4", true
		}, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"TheHive/3.4"}, "Content-Encoding": {"gzip"},
		}},
		{"custom headers, canonicalised", func(wh *config.Webhook) {
			wh.Headers = map[string]string{"X-Tenant": "soc-1", "x-splunk-request-channel": "a1b2"}
		}, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"auditrelay/1.2.3"},
			"X-Tenant": {"soc-1"}, "X-Splunk-Request-Channel": {"a1b2"},
		}},
		{"headers may replace User-Agent", func(wh *config.Webhook) {
			wh.WS.UserAgent, wh.Headers = "TheHive/3.4", map[string]string{"user-agent": "custom/1"}
		}, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"custom/1"},
		}},
		{"reserved headers ignored", func(wh *config.Webhook) {
			wh.Headers = map[string]string{
				"content-type": "text/plain", "Content-Encoding": "br", "webhook-id": "x",
				"Webhook-Signature": "v1,forged", "webhook-timestamp": "1", "Auditrelay-Attempt": "9",
				"Content-Length": "1", "Host": "evil.example", "Transfer-Encoding": "chunked",
			}
		}, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"auditrelay/1.2.3"},
		}},
		{"Content-Encoding only from compressionEnabled", func(wh *config.Webhook) {
			wh.WS.CompressionEnabled, wh.Headers = true, map[string]string{"Content-Encoding": "identity"}
		}, http.Header{
			"Content-Type": {"application/json"}, "User-Agent": {"auditrelay/1.2.3"}, "Content-Encoding": {"gzip"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := staticHeaders(headerWebhook(tt.mod), "1.2.3")
			if !headersEqual(got, tt.want) {
				t.Errorf("headers\n got %v\nwant %v", got, tt.want)
			}
		})
	}
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || strings.Join(v, "\x00") != strings.Join(w, "\x00") {
			return false
		}
	}
	return true
}

func TestWebhookID(t *testing.T) {
	tests := []struct {
		name, stream, webhook string
		first, last           uint64
		want                  string
	}{
		{"single entry", "THEHIVE_AUDIT", "siem", 1234, 1234, "THEHIVE_AUDIT.siem.1234"},
		{"batch", "THEHIVE_AUDIT", "siem", 1234, 1240, "THEHIVE_AUDIT.siem.1234-1240"},
		{"name as subject token", "THEHIVE_AUDIT", "soc eu.chat/ops", 7, 7, "THEHIVE_AUDIT.soc_eu_chat_ops.7"},
		{"non-ASCII, one _ per character", "THEHIVE_AUDIT", "sécurité✓", 1, 1, "THEHIVE_AUDIT.s_curit__.1"},
		{"largest sequence", "S", "w", 1<<64 - 2, 1<<64 - 1, "S.w.18446744073709551614-18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WebhookID(tt.stream, tt.webhook, tt.first, tt.last)
			if got != tt.want {
				t.Errorf("WebhookID = %q, want %q", got, tt.want)
			}
			if again := WebhookID(tt.stream, tt.webhook, tt.first, tt.last); again != got {
				t.Errorf("WebhookID not stable: %q then %q", got, again)
			}
			for _, c := range []byte(got) {
				if c <= ' ' || c >= 0x7f {
					t.Errorf("WebhookID %q holds a non-printable byte %q", got, c)
				}
			}
		})
	}
}

func TestWebhookIDTokenMatchesSubjectToken(t *testing.T) {
	for _, name := range []string{"siem", "soc eu", "a.b*c>d", "sécurité", "日本", "x\xffy", "-_A9z", ""} {
		got := WebhookID("S", name, 1, 1)
		want := "S." + config.SubjectToken(name) + ".1"
		if got != want {
			t.Errorf("WebhookID(%q) = %q, want the subject token %q", name, got, want)
		}
	}
}

func TestWebhookIDUnique(t *testing.T) {
	seen := map[string]string{}
	for _, wh := range []string{"siem", "chat", "siem-2"} {
		for first := uint64(1); first <= 30; first++ {
			for _, last := range []uint64{first, first + 1, first + 9} {
				id := WebhookID("THEHIVE_AUDIT", wh, first, last)
				key := fmt.Sprintf("%s %d-%d", wh, first, last)
				if prev, dup := seen[id]; dup {
					t.Fatalf("WebhookID %q for both %s and %s", id, prev, key)
				}
				seen[id] = key
			}
		}
	}
}

func TestWebhookIDAllocations(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { WebhookID("THEHIVE_AUDIT", "siem", 1234, 1240) })
	if allocs > 1 {
		t.Errorf("WebhookID allocates %v times, want 1 (its result)", allocs)
	}
}

func BenchmarkWebhookID(b *testing.B) {
	b.ReportAllocs()
	for i := uint64(0); b.Loop(); i++ {
		WebhookID("THEHIVE_AUDIT", "siem", 1_000_000+i, 1_000_000+i)
	}
}

func BenchmarkStaticHeaders(b *testing.B) {
	wh := headerWebhook(func(wh *config.Webhook) {
		wh.Auth = config.Auth{Type: "bearer", Key: "k"}
		wh.Headers = map[string]string{"X-Tenant": "soc-1"}
	})
	b.ReportAllocs()
	for b.Loop() {
		staticHeaders(wh, "1.2.3")
	}
}
