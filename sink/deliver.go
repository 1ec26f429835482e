package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/audit"
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
// webhook-id are built once; the signature is made anew per attempt.
func (w *Webhook) deliver(soft, hard context.Context, u *unit) *unit {
	msgs := make([]*audit.Message, len(u.items))
	for i, h := range u.items {
		msgs[i] = h.msg
	}
	// The body is not pooled: the transport may still read a request body
	// after Do returns (an early response), so it is never reused.
	body, err := w.enc.Body(nil, msgs)
	var rerr *RenderError
	if errors.As(err, &rerr) {
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
	w.retry(soft, hard, u, msgs, id, body)
	return u
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

func (w *Webhook) retry(soft, hard context.Context, u *unit, msgs []*audit.Message, id string, body []byte) {
	r := w.cfg.Delivery.Retry
	for n := 1; ; n++ {
		res := w.attempt(hard, id, body, n)
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
		case n >= r.MaxAttempts || time.Since(msgs[0].Time) >= r.MaxAge:
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

// attempt makes one HTTP request under the webhook's request timeout.
func (w *Webhook) attempt(ctx context.Context, id string, body []byte, n int) Result {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.WS.Timeout.Request)
	defer cancel()
	req := w.request(ctx, body)
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
		res.snippet = w.scrub(drain(resp.Body, res.Outcome != Delivered))
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
		Header: w.headers.Clone(), ContentLength: int64(len(body)),
		Body:    io.NopCloser(bytes.NewReader(body)),
		GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
	}
	return req.WithContext(ctx)
}

// drain reads what is left of a body so the connection is reused, keeping
// the start of it when it will be logged.
func drain(body io.ReadCloser, keep bool) string {
	defer body.Close()
	var snippet []byte
	if keep {
		snippet, _ = io.ReadAll(io.LimitReader(body, 512))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<20))
	return string(snippet)
}

// scrub hides the webhook's own secrets in a response snippet: a receiver
// may echo the request (Authorization and all) back in its error page.
func (w *Webhook) scrub(s string) string {
	for _, secret := range w.secrets {
		s = strings.ReplaceAll(s, secret, "****")
	}
	return s
}

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
			LastStatus: res.Status, StreamSeq: m.Seq, StreamTime: m.Time}
		if !w.storeDeadLetter(ctx, dl, m) {
			w.handBack(u, msgs)
			return
		}
		_ = m.Ack()
		w.m.deadLettered.Inc()
	}
}

func (w *Webhook) storeDeadLetter(ctx context.Context, dl audit.DeadLetter, m *audit.Message) bool {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := w.dl.PublishDeadLetter(ctx, dl, m.Entry.Raw)
		if err == nil {
			return true
		}
		w.log.Warn("dead letter not stored yet", "seq", m.Seq, "err", err)
		if !sleep(ctx, wait) {
			return false
		}
	}
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
	switch {
	case r.Err != nil:
		return r.Err.Error()
	case r.snippet != "":
		return fmt.Sprintf("HTTP %s: %s", r.Status, r.snippet)
	}
	return "HTTP " + r.Status
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
