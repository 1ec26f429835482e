package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// cmdHealthcheck probes the admin endpoint, for a container HEALTHCHECK in
// an image without curl: exit 0 on a 2xx, 1 otherwise.
func cmdHealthcheck(ctx context.Context, args []string, e *env) error {
	fs := flags("healthcheck", e)
	url := fs.String("url", "http://127.0.0.1:9464/healthz", "the URL to probe (/healthz, or /readyz for readiness)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := parse(fs, args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return usageError{fmt.Errorf("-url: %w", err)}
	}
	// Never through a proxy from the environment: the probe is local.
	client := &http.Client{Transport: &http.Transport{}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("healthcheck %s: %s", *url, resp.Status)
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", *url, resp.Status)
	return nil
}
