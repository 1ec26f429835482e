package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditrelay/auditrelay/config"
)

func cmdPublish(ctx context.Context, args []string, e *env) error {
	fs := flags("publish", e)
	url := fs.String("nats", envOr(e, "NATS_URL", nats.DefaultURL), "NATS server URL ($NATS_URL)")
	subject := fs.String("subject", "", `subject for every entry (default "thehive.audit.<objectType>")`)
	if err := parse(fs, args); err != nil {
		return err
	}
	in, name, err := input(fs.Args(), e)
	if err != nil {
		return err
	}
	defer in.Close()
	nc, err := nats.Connect(*url, nats.Name("auditrelay publish"))
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redactServers(*url), err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	p := &publisher{js: js, subject: *subject, progress: newProgress(e.stderr, "published")}
	n, err := p.lines(ctx, in)
	p.progress.done(n)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	fmt.Fprintf(e.stderr, "published %d entries from %s\n", n, name)
	return nil
}

func envOr(e *env, key, def string) string {
	if v := e.getenv(key); v != "" {
		return v
	}
	return def
}

func input(args []string, e *env) (io.ReadCloser, string, error) {
	switch {
	case len(args) > 1:
		return nil, "", usageError{fmt.Errorf("publish takes one file, got %d", len(args))}
	case len(args) == 0 || args[0] == "-":
		return io.NopCloser(e.stdin), "standard input", nil
	}
	f, err := os.Open(args[0])
	if err != nil {
		return nil, "", usageError{err}
	}
	return f, args[0], nil
}

// publisher sends lines as they are, asynchronously, and waits for every
// JetStream acknowledgement: an entry is counted once the stream has it.
type publisher struct {
	js       jetstream.JetStream
	subject  string
	progress *progress
}

func (p *publisher) lines(ctx context.Context, r io.Reader) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	var futures []jetstream.PubAckFuture
	n := 0
	for line := 1; sc.Scan(); line++ {
		data := bytes.TrimSpace(sc.Bytes())
		if len(data) == 0 {
			continue
		}
		f, err := p.js.PublishAsync(p.subjectFor(data), bytes.Clone(data))
		if err != nil {
			return n, fmt.Errorf("line %d: %w", line, err)
		}
		futures = append(futures, f)
		if len(futures) >= 256 {
			if err := wait(ctx, futures); err != nil {
				return n, err
			}
			n += len(futures)
			futures = futures[:0]
			p.progress.update(n)
		}
	}
	if err := sc.Err(); err != nil {
		return n, err
	}
	err := wait(ctx, futures)
	if err == nil {
		n += len(futures)
	}
	return n, err
}

func wait(ctx context.Context, futures []jetstream.PubAckFuture) error {
	timeout := time.After(30 * time.Second)
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish to %s: %w", f.Msg().Subject, err)
		case <-timeout:
			return fmt.Errorf("no acknowledgement from JetStream for %s", f.Msg().Subject)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// subjectFor is -subject, else thehive.audit.<objectType>, the way an
// application would split its trail.
func (p *publisher) subjectFor(data []byte) string {
	if p.subject != "" {
		return p.subject
	}
	var e struct {
		ObjectType string `json:"objectType"`
	}
	if json.Unmarshal(data, &e) != nil || e.ObjectType == "" {
		return "thehive.audit.unknown"
	}
	return "thehive.audit." + config.SubjectToken(e.ObjectType)
}

// redactServers shows a -nats value (one URL or a comma-separated list)
// as config.RedactURL does, so a user:password or token in it never shows.
func redactServers(list string) string {
	urls := strings.Split(list, ",")
	for i, u := range urls {
		urls[i] = config.RedactURL(strings.TrimSpace(u))
	}
	return strings.Join(urls, ",")
}
