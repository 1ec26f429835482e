package sink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditrelay/auditrelay/config"
)

// signingSecretPrefix starts every Standard Webhooks secret.
const signingSecretPrefix = "whsec_"

// Signer computes Standard Webhooks signatures
// (https://www.standardwebhooks.com) with one or more secrets. It is safe for
// concurrent use.
type Signer struct {
	keys [][]byte
	pool sync.Pool // *signState, so Sign does not rebuild an HMAC per call
}

type signState struct {
	macs    []hash.Hash
	prefix  []byte // id.timestamp.
	sum     []byte
	encoded []byte
}

// NewSigner decodes secrets, each "whsec_" followed by standard base64 of
// at least 24 bytes. It returns nil and no error for no secret: the webhook
// is then not signed. Errors name a secret by its index, never its value.
func NewSigner(secrets []config.Secret) (*Signer, error) {
	if len(secrets) == 0 {
		return nil, nil
	}
	s := &Signer{keys: make([][]byte, len(secrets))}
	for i, secret := range secrets {
		key, err := decodeSigningSecret(string(secret))
		if err != nil {
			return nil, fmt.Errorf("signing secret %d: %w", i+1, err)
		}
		s.keys[i] = key
	}
	s.pool.New = s.newState
	return s, nil
}

func decodeSigningSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, signingSecretPrefix)
	if !ok {
		return nil, fmt.Errorf("does not start with %q", signingSecretPrefix)
	}
	// Padded standard base64 only, as the reference libraries decode it: a
	// secret they cannot read would fail every verification at the receiver.
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("not standard base64 after %q", signingSecretPrefix)
	}
	if len(key) < config.MinSigningKey {
		return nil, fmt.Errorf("key of %d bytes, want at least %d", len(key), config.MinSigningKey)
	}
	return key, nil
}

func (s *Signer) newState() any {
	st := &signState{
		macs:    make([]hash.Hash, len(s.keys)),
		prefix:  make([]byte, 0, 64),
		sum:     make([]byte, 0, sha256.Size),
		encoded: make([]byte, 0, base64.StdEncoding.EncodedLen(sha256.Size)),
	}
	for i, k := range s.keys {
		st.macs[i] = hmac.New(sha256.New, k)
	}
	return st
}

// Sign returns the webhook-signature header for a request with webhook-id
// id and webhook-timestamp ts.Unix(): "v1,<base64 HMAC-SHA256>" per secret,
// separated by spaces, so a receiver holding either secret of a rotation
// verifies it. The timestamp changes per attempt, so the engine signs each
// attempt anew.
func (s *Signer) Sign(id string, ts time.Time, body []byte) string {
	st := s.pool.Get().(*signState)
	defer s.pool.Put(st)
	st.prefix = append(st.prefix[:0], id...)
	st.prefix = append(st.prefix, '.')
	st.prefix = strconv.AppendInt(st.prefix, ts.Unix(), 10)
	st.prefix = append(st.prefix, '.')
	var b strings.Builder
	b.Grow(len(s.keys) * (len("v1,") + base64.StdEncoding.EncodedLen(sha256.Size) + 1))
	for i, mac := range st.macs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.Write(st.signOne(mac, body))
	}
	return b.String()
}

// signOne returns the base64 signature in st.encoded, valid until the next
// call.
func (st *signState) signOne(mac hash.Hash, body []byte) []byte {
	mac.Reset()
	mac.Write(st.prefix)
	mac.Write(body)
	st.sum = mac.Sum(st.sum[:0])
	st.encoded = base64.StdEncoding.AppendEncode(st.encoded[:0], st.sum)
	return st.encoded
}
