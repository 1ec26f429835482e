package sink

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/auditrelay/auditrelay/config"
)

// Secrets as a Standard Webhooks sender generates them: "whsec_" + base64
// of 24 to 64 random bytes.
const (
	signSecretA = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"                         // 24 bytes, the specification's own example
	signSecretB = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD0Bgi8tbs2/rAuW4KaA6Q8A==" // 40 bytes
	signSecretC = "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXkgISE="                 // 29 bytes
)

func mustSigner(t testing.TB, secrets ...config.Secret) *Signer {
	t.Helper()
	s, err := NewSigner(secrets)
	if err != nil {
		t.Fatalf("NewSigner: %v", err)
	}
	return s
}

// signedHeaders are the headers the engine sends with a signature.
func signedHeaders(id string, ts time.Time, sig string) http.Header {
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	return h
}

func verifyWith(t *testing.T, secret string, body []byte, h http.Header) error {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatalf("reference library refuses the secret: %v", err)
	}
	return wh.Verify(body, h)
}

func TestSignVerifiedByReferenceLibrary(t *testing.T) {
	body := []byte(wireFixtures[0].raw)
	id := WebhookID("THEHIVE_AUDIT", "siem", 1234, 1234)
	now := time.Now()
	tests := []struct {
		name     string
		secrets  []config.Secret
		verifier string
		body     []byte
		headerTS time.Time
		wantErr  error
	}{
		{"single secret", []config.Secret{signSecretA}, signSecretA, body, now, nil},
		{"longer padded secret", []config.Secret{signSecretB}, signSecretB, body, now, nil},
		{"wrong secret", []config.Secret{signSecretA}, signSecretC, body, now, standardwebhooks.ErrNoMatchingSignature},
		{"rotation, old secret", []config.Secret{signSecretA, signSecretB}, signSecretA, body, now, nil},
		{"rotation, new secret", []config.Secret{signSecretA, signSecretB}, signSecretB, body, now, nil},
		{"rotation, unrelated secret", []config.Secret{signSecretA, signSecretB}, signSecretC, body, now, standardwebhooks.ErrNoMatchingSignature},
		{"tampered body", []config.Secret{signSecretA}, signSecretA, append([]byte(" "), body...), now, standardwebhooks.ErrNoMatchingSignature},
		{"other timestamp", []config.Secret{signSecretA}, signSecretA, body, now.Add(-time.Second), standardwebhooks.ErrNoMatchingSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig := mustSigner(t, tt.secrets...).Sign(id, now, body)
			err := verifyWith(t, tt.verifier, tt.body, signedHeaders(id, tt.headerTS, sig))
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Verify = %v, want %v (signature %q)", err, tt.wantErr, sig)
			}
		})
	}
}

func TestSignMatchesReferenceSign(t *testing.T) {
	ts := time.Unix(1614265330, 0)
	id := "msg_p5jXN8AQM9LWM0D4loKWxJek"
	body := []byte(`{"test": 2432232314}`)
	ref, err := standardwebhooks.NewWebhook(signSecretA)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ref.Sign(id, ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustSigner(t, signSecretA).Sign(id, ts, body); got != want {
		t.Errorf("Sign = %q, want the reference library's %q", got, want)
	}
	// The specification's published example for these inputs.
	if want != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Errorf("reference signature %q differs from the specification's example", want)
	}
}

func TestSignRotationShape(t *testing.T) {
	sig := mustSigner(t, signSecretA, signSecretB, signSecretC).Sign("id", time.Unix(1700000000, 0), []byte("{}"))
	parts := strings.Split(sig, " ")
	if len(parts) != 3 {
		t.Fatalf("signature %q has %d parts, want one per secret", sig, len(parts))
	}
	for _, p := range parts {
		b64, ok := strings.CutPrefix(p, "v1,")
		raw, err := base64.StdEncoding.DecodeString(b64)
		if !ok || err != nil || len(raw) != 32 {
			t.Errorf("part %q is not v1,<base64 of 32 bytes>", p)
		}
	}
}

func TestNewSignerErrors(t *testing.T) {
	tests := []struct {
		name, secret, want string
	}{
		{"no prefix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", `does not start with "whsec_"`},
		{"not base64", "whsec_not*base64*at*all*s3cr3t", "not standard base64"},
		{"unpadded", "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXkgISE", "not standard base64"},
		{"too short", "whsec_c2hvcnQtczNjcjN0", "key of 12 bytes, want at least 24"},
		{"empty", "", `does not start with "whsec_"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSigner([]config.Secret{signSecretA, config.Secret(tt.secret)})
			if err == nil {
				t.Fatal("NewSigner accepted the secret")
			}
			if !strings.Contains(err.Error(), "signing secret 2: "+tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, "signing secret 2: "+tt.want)
			}
			body := strings.TrimPrefix(tt.secret, "whsec_")
			if body != "" && strings.Contains(err.Error(), body[:8]) {
				t.Errorf("err %q shows the secret", err)
			}
		})
	}
}

func TestNewSignerNoSecret(t *testing.T) {
	s, err := NewSigner(nil)
	if s != nil || err != nil {
		t.Errorf("NewSigner(nil) = %v, %v; want nil, nil", s, err)
	}
}

func TestSignConcurrent(t *testing.T) {
	s := mustSigner(t, signSecretA, signSecretB)
	ts := time.Now()
	bodies := make([][]byte, len(wireFixtures))
	for i, f := range wireFixtures {
		bodies[i] = []byte(f.raw)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				body := bodies[(g+i)%len(bodies)]
				id := WebhookID("THEHIVE_AUDIT", "siem", uint64(i), uint64(i))
				if err := verifyWith(t, signSecretB, body, signedHeaders(id, ts, s.Sign(id, ts, body))); err != nil {
					t.Errorf("concurrent signature does not verify: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestSignReusesHMACs(t *testing.T) {
	s := mustSigner(t, signSecretA)
	body := []byte(wireFixtures[0].raw)
	ts := time.Now()
	s.Sign("id", ts, body) // warm the pool
	pooled := testing.AllocsPerRun(100, func() { s.Sign("THEHIVE_AUDIT.siem.1234", ts, body) })
	fresh := testing.AllocsPerRun(100, func() { s.newState() })
	// One allocation for the returned string, plus a fresh HMAC state per
	// call if the pool were not reused. Not a fixed 1: under -race sync.Pool
	// drops a quarter of its items on purpose.
	t.Logf("Sign: %v allocations per call; a new HMAC state: %v", pooled, fresh)
	if pooled > (1+fresh)*3/4 {
		t.Errorf("Sign allocates %v times per call, a new HMAC state %v: the pool is not reused", pooled, fresh)
	}
}

func BenchmarkSignerSign(b *testing.B) {
	s := mustSigner(b, signSecretA)
	body := []byte(wireFixtures[0].raw)
	ts := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Sign("THEHIVE_AUDIT.siem.1234", ts, body)
	}
}

func BenchmarkSignerSignRotation(b *testing.B) {
	s := mustSigner(b, signSecretA, signSecretB)
	body := []byte(wireFixtures[0].raw)
	ts := time.Now()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Sign("THEHIVE_AUDIT.siem.1234", ts, body)
	}
}
