package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
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

// runBare is the reference of issue 7: a JetStream pull consumer that POSTs
// each entry to every URL, one after another, with one shared keep-alive
// client, and acks. No retries, no config, no ordering, no metrics. With
// -parallel it POSTs to the URLs concurrently: a stronger reference, shown
// beside the first.
func runBare(args []string) int {
	fs := flag.NewFlagSet("bare", flag.ExitOnError)
	url := fs.String("nats", nats.DefaultURL, "NATS URL")
	stream := fs.String("stream", "THEHIVE_AUDIT", "stream")
	urls := fs.String("urls", "", "comma-separated webhook URLs")
	parallel := fs.Bool("parallel", false, "POST to the URLs concurrently instead of one after another")
	_ = fs.Parse(args)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := bare(ctx, *url, *stream, strings.Split(*urls, ","), *parallel); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		return 1
	}
	return 0
}

func bare(ctx context.Context, url, stream string, urls []string, parallel bool) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable: "bare", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 4, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true,
	}}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		var wg sync.WaitGroup
		for _, u := range urls {
			if parallel {
				wg.Go(func() { post(client, u, m.Data()) })
			} else {
				post(client, u, m.Data())
			}
		}
		wg.Wait()
		_ = m.Ack()
	})
	if err != nil {
		return err
	}
	<-ctx.Done()
	cc.Stop()
	return nil
}

func post(c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}
