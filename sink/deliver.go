package sink

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/audit"
	"github.com/auditrelay/auditrelay/internal/backoff"
)

// Request headers auditrelay sets on every attempt (SPEC §4).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	HeaderAttempt          = "Auditrelay-Attempt"
)

// deliver sends a unit until it is delivered, dead-lettered, or (when soft
// ends first) handed back; it acknowledges accordingly. Its body and
// webhook-id are built once; the signature is made anew per attempt. Its
// attempts are bounded by d, whose parent is the hard context: past it,
// nothing is tried or stored any more, and what is left is handed back.
func (w *Webhook) deliver(soft context.Context, d *deadline, u *unit) *unit {
	hard, msgs := d.parent, u.msgs
	// The body is not pooled: the transport may still read a request body
	// after Do returns (an early response), so it is never reused.
	body, err := w.enc.Body(nil, msgs)
	if err != nil && failedToRender(err) {
		// A template failed: the entries it fails on are dead-lettered,
		// the others go on.
		if msgs, body, err = w.separate(hard, u, msgs); len(msgs) == 0 || u.handedBack {
			return u
		}
	}
	if err != nil {
		// Encoding an already-decoded entry cannot fail short of a bug.
		w.deadLetter(hard, u, msgs, 0, Result{Status: "encode", Err: err})
		return u
	}
	id := WebhookID(w.stream, w.cfg.Name, msgs[0].Seq, msgs[len(msgs)-1].Seq)
	w.retry(soft, d, u, msgs, id, body)
	return u
}

// failedToRender tells a template's failure on an entry from any other
// error. Its own function so that the target errors.As needs is allocated
// only when there is an error, not for every unit.
func failedToRender(err error) bool {
	var rerr *renderError
	return errors.As(err, &rerr)
}

// separate renders each entry of a unit alone, dead-letters those the
// template fails on, with its error as the reason, and returns the others
// with their body. A batch whose entries each render but not together is
// dead-lettered whole.
func (w *Webhook) separate(ctx context.Context, u *unit, msgs []*audit.Message) ([]*audit.Message, []byte, error) {
	var good []*audit.Message
	for _, m := range msgs {
		_, err := w.enc.Body(nil, []*audit.Message{m})
		if err == nil {
			good = append(good, m)
			continue
		}
		w.deadLetter(ctx, u, []*audit.Message{m}, 0, Result{Status: "template", Outcome: Permanent, Err: err})
		if u.handedBack {
			w.handBack(u, msgs)
			return nil, nil, err
		}
	}
	if len(good) == 0 {
		return nil, nil, nil
	}
	body, err := w.enc.Body(nil, good)
	return good, body, err
}

func (w *Webhook) retry(soft context.Context, d *deadline, u *unit, msgs []*audit.Message, id string, body []byte) {
	hard, r := d.parent, w.cfg.Delivery.Retry
	for n := 1; ; n++ {
		res := w.attemptWithin(d, id, body, n)
		switch {
		case res.Outcome == Delivered:
			w.acked(msgs)
			return
		case res.Outcome == Permanent:
			w.deadLetter(hard, u, msgs, n, res)
			return
		case hard.Err() != nil:
			w.handBack(u, msgs)
			return
		case n >= r.MaxAttempts || time.Since(msgs[0].MaxAgeFrom()) >= r.MaxAge:
			w.deadLetter(hard, u, msgs, n, res)
			return
		}
		w.m.retried.Add(float64(len(msgs)))
		if !sleep(soft, Backoff(r, n, res.RetryAfter)) {
			w.handBack(u, msgs)
			return
		}
	}
}

// attempt makes one HTTP request under the webhook's request timeout, on
// its own (send-test).
func (w *Webhook) attempt(ctx context.Context, id string, body []byte, n int) Result {
	d := w.deadline(ctx)
	defer d.close()
	return w.attemptWithin(d, id, body, n)
}

// deadline bounds attempts made one after another, as a delivery
// goroutine makes them, by the webhook's request timeout.
func (w *Webhook) deadline(parent context.Context) *deadline {
	return &deadline{parent: parent, limit: w.cfg.WS.Timeout.Request}
}

// attemptWithin makes one HTTP request, bounded by d.
func (w *Webhook) attemptWithin(d *deadline, id string, body []byte, n int) Result {
	defer d.stop()
	req := w.request(d.start(), body)
	req.Header[HeaderWebhookID] = []string{id}
	req.Header[HeaderAttempt] = []string{strconv.Itoa(n)}
	if w.signer != nil {
		now := time.Now()
		req.Header[HeaderWebhookTimestamp] = []string{strconv.FormatInt(now.Unix(), 10)}
		req.Header[HeaderWebhookSignature] = []string{w.signer.Sign(id, now, body)}
	}
	start := time.Now()
	resp, err := w.client.Do(req)
	res := Classify(resp, err, time.Now())
	if resp != nil {
		res.snippet = w.snippet(resp, res.Outcome != Delivered)
	}
	if res.Err != nil {
		res.Err = &scrubbedError{err: res.Err, scrub: w.scrub}
	}
	w.observe(res, time.Since(start))
	return res
}

// request is http.NewRequestWithContext without parsing the URL again on
// every attempt: the webhook's URL was parsed once by New. The transport
// never changes a request's URL (a redirect makes a new request).
func (w *Webhook) request(ctx context.Context, body []byte) *http.Request {
	req := &http.Request{
		Method: http.MethodPost, URL: w.url, Host: w.url.Host,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header(), ContentLength: int64(len(body)),
		Body:    io.NopCloser(bytes.NewReader(body)),
		GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}
	return req.WithContext(ctx)
}

// header is a new header map for one attempt: the static headers plus
// room for the four set per attempt. Their value slices are shared, not
// copied: nothing writes into a request's header values, only new keys
// are set (per attempt, on this map).
func (w *Webhook) header() http.Header {
	h := make(http.Header, len(w.headers)+4)
	for k, v := range w.headers {
		h[k] = v
	}
	return h
}

// snippetLen is how much of a failed response's body a reason quotes.
const snippetLen = 512

// snippet drains the body and, when keep, returns its start scrubbed of
// the webhook's secrets. It reads the longest secret's length past
// snippetLen and scrubs before cutting, so a secret that straddles the cut
// is hidden whole rather than shown in part.
func (w *Webhook) snippet(resp *http.Response, keep bool) string {
	n := 0
	if keep {
		n = snippetLen
		if len(w.secrets) > 0 {
			n += len(w.secrets[0]) // secretsOf sorts longest first
		}
	}
	s := w.scrub(drain(resp, n))
	if len(s) > snippetLen {
		s = s[:snippetLen]
	}
	return s
}

// drain reads what is left of a body so the connection is reused, keeping
// the first keep bytes of its text.
func drain(resp *http.Response, keep int) string {
	defer resp.Body.Close()
	var snippet []byte
	if keep > 0 {
		snippet, _ = io.ReadAll(io.LimitReader(text(resp), int64(keep)))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return string(snippet)
}

// text is a response body as its sender wrote it. auditrelay asks for no
// compression (the transport's DisableCompression), but a receiver may
// gzip an error page anyway: it is read through gzip then, so that a
// reason quotes the text and the scrubbing sees any secret it echoes,
// never the compressed bytes. A body that says gzip and is not reads as
// a note saying so.
func text(resp *http.Response) io.Reader {
	if !strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		return resp.Body
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return strings.NewReader("(a gzip body that does not decompress)")
	}
	return zr
}

// scrub hides the webhook's own secrets (secretsOf) in a response snippet
// or an error's text: a receiver may echo the request (URL, Authorization,
// headers and all) back in its error page. It is the one scrubber; every
// reason, log line and send-test result goes through it.
func (w *Webhook) scrub(s string) string {
	for _, secret := range w.secrets {
		s = strings.ReplaceAll(s, secret, "****")
	}
	return s
}

// scrubbedError shows its error's text scrubbed of the webhook's secrets,
// while errors.As and errors.Is still see the error itself (errorKind, the
// TLS peer of send-test).
type scrubbedError struct {
	err   error
	scrub func(string) string
}

func (e *scrubbedError) Error() string { return e.scrub(e.err.Error()) }
func (e *scrubbedError) Unwrap() error { return e.err }

// observe records an attempt; a webhook going down or coming back is worth
// one log line each way.
func (w *Webhook) observe(res Result, d time.Duration) {
	w.m.attempt(res.Status)
	w.m.duration.Observe(d.Seconds())
	up := res.Outcome != Retry
	if w.up.Swap(up) != up {
		if up {
			w.log.Info("webhook is up again", "status", res.Status)
		} else {
			w.log.Warn("webhook is failing; retrying", "status", res.Status, "reason", res.reason())
		}
	}
	if up {
		w.m.up.Set(1)
	} else {
		w.m.up.Set(0)
	}
}

func (w *Webhook) acked(msgs []*audit.Message) {
	now := time.Now()
	for _, m := range msgs {
		_ = m.Ack()
		w.m.lag.Observe(now.Sub(m.Time).Seconds())
	}
	w.m.delivered.Add(float64(len(msgs)))
}

// deadLetter stores each entry of the unit as a dead letter, then
// acknowledges it. A store that fails is retried until it succeeds or the
// hard deadline passes; then the entry is handed back, never acknowledged.
func (w *Webhook) deadLetter(ctx context.Context, u *unit, msgs []*audit.Message, attempts int, res Result) {
	reason := res.reason()
	for _, m := range msgs {
		e := &m.Entry
		w.log.Warn("dead-lettering", "seq", m.Seq, "operation", e.Operation, "objectType", e.ObjectType,
			"objectId", e.ObjectID, "attempts", attempts, "status", res.Status, "reason", reason)
		dl := audit.DeadLetter{Webhook: w.cfg.Name, Reason: reason, Attempts: attempts,
			LastStatus: res.Status, StreamSeq: m.Seq, StreamTime: m.Time, Round: m.Round}
		dlSeq, ok := w.storeDeadLetter(ctx, dl, m)
		if !ok {
			w.handBack(u, msgs)
			return
		}
		_ = m.AckDeadLettered(dlSeq)
		w.m.deadLettered.Inc()
	}
}

// storeDeadLetter returns the dead letter's sequence in the dead-letter
// stream, false when ctx ended first. Every attempt has the same message
// id, so copies a reconnecting client buffered are stored once.
func (w *Webhook) storeDeadLetter(ctx context.Context, dl audit.DeadLetter, m *audit.Message) (uint64, bool) {
	var dlSeq uint64
	stored := backoff.Retry(ctx.Done(), backoff.New(100*time.Millisecond, 5*time.Second), func() (err error) {
		dlSeq, err = w.dl.PublishDeadLetter(ctx, dl, m.Entry.Raw)
		return err
	}, func(err error, wait time.Duration) {
		w.log.Warn("dead letter not stored yet", "seq", m.Seq, "err", err, "retryIn", wait)
	})
	return dlSeq, stored
}

// handBack returns the unit's entries to JetStream for a prompt redelivery.
func (w *Webhook) handBack(u *unit, msgs []*audit.Message) {
	u.handedBack = true
	for _, m := range msgs {
		_ = m.NakWithDelay(0)
	}
}

// reason is the Auditrelay-Reason of a dead letter.
func (r Result) reason() string {
	status := "HTTP " + r.Status
	if r.redirect {
		status += " (redirect not followed: only 307 and 308 are, with followRedirects)"
	}
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case r.snippet != "":
		return status + ": " + r.snippet
	}
	return status
}

// sleep waits d, or returns false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
