package sink

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpproxy"

	"github.com/auditrelay/auditrelay/config"
)

// proxyError is a proxy that answered CONNECT with something other than 200
// (407 for missing or wrong credentials, 403 for a refused target, …).
type proxyError struct {
	Proxy  string // the proxy's URL, without credentials
	Status string
}

// Error names the proxy and its answer.
func (e *proxyError) Error() string {
	return fmt.Sprintf("proxy %s refused CONNECT: %s", e.Proxy, e.Status)
}

// proxyFor returns the webhook's proxy choice for net/http's Transport.Proxy:
// the `proxy` block (hosts of nonProxyHosts reached directly), else, with
// useProxyProperties, HTTPS_PROXY/HTTP_PROXY/NO_PROXY as they are when
// proxyFor is called (httpproxy never proxies localhost and loopback
// addresses), else direct. A nil URL means direct.
func proxyFor(wh *config.Webhook) func(*http.Request) (*url.URL, error) {
	p := wh.WS.Proxy
	switch {
	case p.Host != "":
		proxyURL := p.URL()
		return func(r *http.Request) (*url.URL, error) {
			if bypass(p.NonProxyHosts, r.URL.Hostname()) {
				return nil, nil
			}
			return proxyURL, nil
		}
	case wh.WS.UseProxyProperties:
		fromEnv := httpproxy.FromEnvironment().ProxyFunc()
		return func(r *http.Request) (*url.URL, error) { return fromEnv(r.URL) }
	}
	return func(*http.Request) (*url.URL, error) { return nil, nil }
}

// bypass tells whether host matches nonProxyHosts, as Java's
// http.nonProxyHosts: exact names, `*.example.org` (any name ending so) and
// `192.168.*` (any name starting so), without case.
func bypass(patterns []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSpace(p))
		switch {
		case p == "*":
			return true
		case strings.HasPrefix(p, "*") && strings.HasSuffix(host, p[1:]):
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(host, p[:len(p)-1]):
			return true
		case p == host:
			return true
		}
	}
	return false
}

// DescribeProxy says how a request to target would leave, for `send-test`:
// "direct" or the proxy's URL without credentials ("http://proxy.corp:3128",
// "socks5://10.0.0.1:1080").
func DescribeProxy(wh *config.Webhook, target *url.URL) string {
	u, err := proxyFor(wh)(&http.Request{URL: target})
	switch {
	case err != nil:
		return "invalid proxy setting: " + err.Error()
	case u == nil:
		return "direct"
	}
	return redactProxy(u)
}

func redactProxy(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host}).String()
}

// onProxyConnectResponse turns a refused CONNECT into a *proxyError, so
// errorKind and the logs can tell it from the endpoint's own answers.
func onProxyConnectResponse(_ context.Context, proxyURL *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &proxyError{Proxy: redactProxy(proxyURL), Status: resp.Status}
}
