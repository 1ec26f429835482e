package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// runBare is the reference auditrelay is measured against: the simplest
// fast program that moves entries from a JetStream durable to N webhooks.
// It pulls in batches of 500, works on 64 entries at once, POSTs each to
// every URL one after another over one shared keep-alive client, and acks
// the entry once every POST got a 2xx (Nak otherwise, so JetStream
// redelivers it). No retries of its own, no ordering, no dead letters, no
// metrics, no config. With -per-webhook it runs one durable per URL, each
// with its own 64 workers, acking on its own: the shape of a sidecar whose
// webhooks are independent, as auditrelay's are.
func runBare(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	url := fs.String("nats", nats.DefaultURL, "NATS URL")
	stream := fs.String("stream", "THEHIVE_AUDIT", "stream")
	urls := fs.String("urls", "", "comma-separated webhook URLs")
	workers := fs.Int("workers", 64, "entries worked on at once (per durable)")
	batch := fs.Int("batch", 500, "pull batch: messages the client buffers")
	perWebhook := fs.Bool("per-webhook", false, "one durable consumer per URL, each with its own workers and acks")
	h2 := fs.Bool("h2", false, "allow HTTP/2 over TLS")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	targets := strings.Split(*urls, ",")
	if err := bare(ctx, *url, *stream, targets, *workers, *batch, *perWebhook, *h2); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	return 0
}

func bare(ctx context.Context, url, stream string, targets []string, workers, batch int, perWebhook, h2 bool) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: workers + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   h2,
		// The receivers are the bench's own, on loopback.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec
	}}
	groups := [][]string{targets}
	if perWebhook {
		groups = nil
		for _, t := range targets {
			groups = append(groups, []string{t})
		}
	}
	var wg sync.WaitGroup
	var iters []jetstream.MessagesContext
	for i, g := range groups {
		durable := "bare"
		if perWebhook {
			durable = fmt.Sprintf("bare-%d", i+1)
		}
		cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait: 30 * time.Second, MaxAckPending: 10000,
		})
		if err != nil {
			return err
		}
		it, err := cons.Messages(jetstream.PullMaxMessages(batch))
		if err != nil {
			return err
		}
		iters = append(iters, it)
		jobs := make(chan jetstream.Msg, workers)
		for range workers {
			wg.Go(func() {
				for m := range jobs {
					if postAll(client, g, m.Data()) {
						_ = m.Ack()
					} else {
						_ = m.Nak()
					}
				}
			})
		}
		wg.Go(func() {
			defer close(jobs)
			for {
				m, err := it.Next()
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					return
				}
				if err == nil {
					jobs <- m
				}
			}
		})
	}
	<-ctx.Done()
	for _, it := range iters {
		it.Stop()
	}
	wg.Wait()
	return nil
}

// postAll POSTs body to each URL in turn; true when every one took it.
func postAll(c *http.Client, urls []string, body []byte) bool {
	for _, u := range urls {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
		if err != nil {
			return false
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return false
		}
	}
	return true
}
