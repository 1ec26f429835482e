package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/sink"
)

// cmdSendTest sends one test entry to each enabled webhook (or the one
// named by -webhook, enabled or not, so it can be tried before it is
// enabled) through its real client, and prints what happened. NATS is not
// needed. Exit 0 only if every endpoint answered 2xx, 2 for configuration
// problems, else 1.
func cmdSendTest(ctx context.Context, args []string, e *env) error {
	fs := flags("send-test", e)
	path := configFlag(fs, e)
	name := fs.String("webhook", "", "test only this webhook")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	hooks, err := testWebhooks(cfg, *name)
	if err != nil {
		return usageError{fmt.Errorf("configuration %s:\n%s", *path, indent(err.Error()))}
	}
	defer closeAll(hooks)
	results := sendTests(ctx, hooks)
	failed := 0
	for _, r := range results {
		printTestResult(e.stdout, r)
		if !r.OK() {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("send-test: %d of %d webhooks did not answer 2xx", failed, len(results))
	}
	fmt.Fprintf(e.stdout, "# %d of %d webhooks answered 2xx\n", len(results), len(results))
	return nil
}

// testWebhooks builds the webhooks to test, as run would: every store,
// client certificate and proxy problem is reported, all of them.
func testWebhooks(cfg *config.Config, name string) ([]*sink.Webhook, error) {
	var picked []config.Webhook
	for _, wh := range cfg.Webhooks {
		switch {
		case wh.IngestHop && wh.Name == name:
			// A test entry sent there would be stored and delivered to every webhook.
			return nil, fmt.Errorf("webhook %q is auditrelay's own ingest listener, not a delivery target", name)
		case wh.IngestHop:
		case (name == "" && wh.Enabled) || wh.Name == name:
			picked = append(picked, wh)
		}
	}
	switch {
	case name != "" && len(picked) == 0:
		return nil, fmt.Errorf("no webhook named %q", name)
	case len(picked) == 0:
		return nil, errors.New("no enabled webhook")
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var hooks []*sink.Webhook
	var errs []error
	for _, wh := range picked {
		w, err := sink.New(wh, sink.Options{Stream: cfg.Auditrelay.NATS.Stream.Name, Version: version, Logger: quiet})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hooks = append(hooks, w)
	}
	if err := errors.Join(errs...); err != nil {
		closeAll(hooks)
		return nil, err
	}
	return hooks, nil
}

func closeAll(hooks []*sink.Webhook) {
	for _, w := range hooks {
		w.Close()
	}
}

// sendTests tests every webhook at once (each bounded by its own
// timeout.request), so one slow endpoint does not hold the others up; the
// results keep the config's order.
func sendTests(ctx context.Context, hooks []*sink.Webhook) []sink.TestResult {
	results := make([]sink.TestResult, len(hooks))
	var wg sync.WaitGroup
	for i, w := range hooks {
		wg.Go(func() { results[i] = w.SendTest(ctx) })
	}
	wg.Wait()
	return results
}

// printTestResult writes one webhook's block:
//
//	siem  https://siem.example.org:443/****
//	  status   200 OK
//	  latency  12ms
//	  tls      TLS 1.3, peer CN=siem.example.org,O=Example
//	  proxy    http://proxy.corp:3128
func printTestResult(w io.Writer, r sink.TestResult) {
	fmt.Fprintf(w, "%s  %s\n", r.Webhook, r.URL)
	fmt.Fprintf(w, "  status   %s\n", testStatus(r))
	fmt.Fprintf(w, "  latency  %s\n", r.Latency.Round(time.Millisecond))
	if tls := testTLS(r); tls != "" {
		fmt.Fprintf(w, "  tls      %s\n", tls)
	}
	fmt.Fprintf(w, "  proxy    %s\n", r.Proxy)
	fmt.Fprintf(w, "  entry    objectType %s, objectId %s\n", sink.TestObjectType, r.ObjectID)
}

func testStatus(r sink.TestResult) string {
	if r.Err != nil {
		return "failed (" + r.Status + "): " + r.Err.Error()
	}
	s := r.Status
	if code, err := strconv.Atoi(r.Status); err == nil {
		s += " " + http.StatusText(code)
	}
	if r.Body != "" {
		s += ": " + strings.Join(strings.Fields(r.Body), " ")
	}
	return s
}

func testTLS(r sink.TestResult) string {
	switch {
	case r.PeerSubject == "":
		return r.TLSVersion
	case !r.PeerVerified && r.TLSVersion == "":
		return "peer " + r.PeerSubject + " (not verified)"
	case !r.PeerVerified:
		return r.TLSVersion + ", peer " + r.PeerSubject + " (not verified)"
	}
	return r.TLSVersion + ", peer " + r.PeerSubject
}
