// Command auditrelay streams TheHive's audit trail from NATS JetStream to the
// webhooks of its application.conf. See README.md and the pages under docs/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Set with -ldflags "-X main.version=… -X main.revision=…".
var (
	version  = "dev"
	revision = ""
)

// Exit codes (SPEC §3).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

func main() {
	setProcs(os.Getenv)
	setGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	os.Exit(run(ctx, os.Args[1:], &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, hup: hup, getenv: os.Getenv}))
}

// env is what a command may touch of the process, so that commands run in
// tests with their own streams and signals.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	hup            <-chan os.Signal
	getenv         func(string) string
}

// usageError and configError exit 2; every other error exits 1.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, e *env) error
}

func commands() []command {
	return []command{
		{"run", "run the sidecar", cmdRun},
		{"check", "validate a config and print it resolved, secrets as ****", cmdCheck},
		{"send-test", "send one test entry to each webhook and print status, latency, TLS peer, proxy", cmdSendTest},
		{"publish", "publish JSON-lines entries to NATS", cmdPublish},
		{"receive", "a reference webhook receiver that prints what it gets", cmdReceive},
		{"replay", "deliver a webhook's entries again from a stream sequence or time", cmdReplay},
		{"deadletter", "list dead letters, or redrive them to their webhook", cmdDeadLetter},
		{"demo", "run NATS, the sidecar and three HTTPS receivers in one process, publish samples, print what arrived", cmdDemo},
		{"healthcheck", "probe the admin endpoint (for a container HEALTHCHECK): exit 0 on 2xx", cmdHealthcheck},
		{"version", "print version, revision and Go version", cmdVersion},
	}
}

func run(ctx context.Context, args []string, e *env) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(e.stderr)
		return exitUsage
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(c.run(ctx, args[1:], e), e)
		}
	}
	fmt.Fprintf(e.stderr, "auditrelay: unknown command %q\n", args[0])
	usage(e.stderr)
	return exitUsage
}

func exitCode(err error, e *env) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	case errors.As(err, &ue):
		fmt.Fprintf(e.stderr, "auditrelay: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(e.stderr, "auditrelay: %v\n", err)
	return exitFailure
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: auditrelay <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\n'auditrelay <command> -h' shows a command's flags.")
}

// flags makes a command's flag set; errors are returned, not printed twice.
func flags(name string, e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("auditrelay "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	return fs
}

// parse parses flags; a bad flag is a usage error.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	return nil
}

func cmdVersion(_ context.Context, args []string, e *env) error {
	if err := parse(flags("version", e), args); err != nil {
		return err
	}
	rev := buildRevision()
	if rev == "" {
		rev = "unknown"
	}
	fmt.Fprintf(e.stdout, "auditrelay %s (revision %s, %s)\n", version, rev, goVersion())
	return nil
}

func buildRevision() string {
	if revision != "" {
		return revision
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return "unknown"
}
