package sink

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/tlsconf"
)

// newClient builds the webhook's HTTP client, once, with every fallible step
// (stores, TLS settings, proxy) done here. It has its own Transport:
//
//   - timeout.connection bounds the TCP connect and, separately, the TLS
//     handshake;
//   - timeout.idle bounds the wait for the response headers once the request
//     is written (ResponseHeaderTimeout, when it is shorter than
//     timeout.request: see newTransport) and how long an unused keep-alive
//     connection is kept (IdleConnTimeout); a stalled body is bounded by the
//     attempt's context (timeout.request), set by the caller: the client has
//     no Timeout of its own;
//   - at most delivery.maxInFlight connections per endpoint, all of them kept
//     for reuse; HTTP/2 when the server offers it over TLS;
//   - only 307 and 308 are followed, and only with followRedirects
//     (checkRedirect); any other 3xx is returned as the response.
//
// Errors start with `webhook "<name>": ` and name the key path.
func newClient(wh *config.Webhook, logger *slog.Logger) (*http.Client, error) {
	tc, err := tlsconf.Client(wh.WS.SSL, logger)
	if err != nil {
		return nil, webhookErr(wh, err)
	}
	tr := newTransport(wh, tc)
	client := &http.Client{Transport: tr, CheckRedirect: checkRedirect(wh.WS.FollowRedirects)}
	if answersChallenges(wh) {
		client.Transport = challengeAnswerer{Transport: tr, choose: proxyFor(wh)}
	}
	return client, nil
}

// maxRedirects bounds a chain of 307/308s, as net/http's default does.
const maxRedirects = 10

// checkRedirect follows only 307 and 308, which net/http re-sends with the
// same method, headers and body (through Request.GetBody; the signature
// stays valid, as it covers webhook-id, timestamp and body, not the URL).
// A 301, 302 or 303 would become a GET without the entry whose 2xx would
// count as delivered; it, any other 3xx, a 307/308 with followRedirects
// false and the 307/308 past maxRedirects are returned as the response,
// which Classify makes permanent. net/http drops Authorization when the
// redirect leaves the host (and its subdomains). It also adds a Referer
// naming the URL redirected from, path and query included: a Slack or
// Teams URL carries its credential there, so that Referer is taken out
// again (a Referer set in the webhook's headers goes on as it is).
func checkRedirect(follow bool) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if !follow || len(via) > maxRedirects || req.Response == nil {
			return http.ErrUseLastResponse
		}
		switch req.Response.StatusCode {
		case http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			if ref := via[0].Header.Get("Referer"); ref != "" {
				req.Header.Set("Referer", ref)
			} else {
				req.Header.Del("Referer")
			}
			return nil
		}
		return http.ErrUseLastResponse
	}
}

func newTransport(wh *config.Webhook, tc *tlsconf.ClientTLS) *http.Transport {
	t := wh.WS.Timeout
	dialer := &net.Dialer{Timeout: t.Connection, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                  proxyFor(wh),
		OnProxyConnectResponse: onProxyConnectResponse,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        tc.Config,
		TLSHandshakeTimeout:    t.Connection,
		IdleConnTimeout:        t.Idle,
		MaxIdleConnsPerHost:    wh.Delivery.MaxInFlight,
		MaxConnsPerHost:        wh.Delivery.MaxInFlight,
		ForceAttemptHTTP2:      true,
		// No Accept-Encoding: gzip on every request, and no gzip reader
		// on every response to see whether it is needed: a receiver's
		// answer is drained, and only a failure's start is read (see
		// text, which reads a gzipped one all the same).
		DisableCompression: true,
	}
	// timeout.idle bounds the wait for the response headers. When it is no
	// shorter than timeout.request, each attempt's own deadline (which
	// started before the request was written) always ends that wait first,
	// and the transport is spared a timer per request: 2 to 4% of an
	// attempt (BenchmarkAttempt), 4 to 13% more entries/s draining a
	// backlog (docs/performance.md).
	if t.Idle < t.Request {
		tr.ResponseHeaderTimeout = t.Idle
	}
	if wh.WS.SSL.Loose.DisableSNI {
		tr.DialTLSContext = tc.DialWithoutSNI(dialer)
	}
	if answersChallenges(wh) {
		tn := &tunneller{choose: proxyFor(wh), tr: tr, dialer: dialer, timeout: t.Connection,
			direct: tr.DialTLSContext, tlsProxies: map[string]bool{}}
		tr.Proxy, tr.DialTLSContext = tn.proxy, tn.dialTLS
	}
	return tr
}

// webhookErr wraps err once with the webhook's name; a store's error
// already names its key path and file.
func webhookErr(wh *config.Webhook, err error) error {
	return fmt.Errorf("webhook %q: %w", wh.Name, err)
}
