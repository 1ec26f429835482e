package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/relay"
)

// configFlag adds -config, defaulting to $AUDITRELAY_CONFIG, else
// ./application.conf.
func configFlag(fs interface {
	StringVar(*string, string, string, string)
}, e *env) *string {
	def := e.getenv("AUDITRELAY_CONFIG")
	if def == "" {
		def = "application.conf"
	}
	p := new(string)
	fs.StringVar(p, "config", def, "the application.conf to read ($AUDITRELAY_CONFIG)")
	return p
}

// load reads and validates a config; its problems, every one, are a usage
// error (exit 2). A file with problems is refused with all of them, the
// stores' included, as check lists them.
func load(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		if _, all := checkAll(path); all != nil {
			err = all
		}
		return nil, usageError{fmt.Errorf("configuration %s:\n%s", path, indent(err.Error()))}
	}
	return cfg, nil
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func cmdRun(ctx context.Context, args []string, e *env) error {
	fs := flags("run", e)
	path := configFlag(fs, e)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := load(*path)
	if err != nil {
		return err
	}
	log := relay.NewLogger(cfg.Auditrelay.Log, e.stderr)
	r, err := relay.New(cfg, relay.Options{Version: version, Revision: buildRevision(), Logger: log})
	if err != nil {
		return usageError{fmt.Errorf("configuration %s:\n%s", *path, indent(err.Error()))}
	}
	startPprof(e.getenv(pprofEnv), log)
	log.Info("auditrelay starting", "version", version, "config", cfg.File, "admin", r.AdminAddr(), "procs", runtime.GOMAXPROCS(0))
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopping := ctx.Done()
	for {
		select {
		case <-stopping:
			// SIGTERM/SIGINT: Run finishes or hands back what is in
			// flight, bounded by shutdownTimeout.
			log.Info("auditrelay stopping: finishing or handing back what is in flight")
			stopping = nil
		case err := <-done:
			if err == nil {
				log.Info("auditrelay stopped")
			}
			return err
		case <-e.hup:
			reload(r, *path, log)
		}
	}
}

// reload applies SIGHUP: a file with errors is rejected and counted, and
// the running configuration kept.
func reload(r *relay.Relay, path string, log *slog.Logger) {
	log.Info("reloading configuration", "config", path)
	cfg, err := config.Load(path)
	if err != nil {
		r.ReloadFailed(err)
		return
	}
	if err := r.Reload(cfg); err == nil {
		log.Info("configuration reloaded", "webhooks", len(cfg.Webhooks))
	}
}

func cmdCheck(_ context.Context, args []string, e *env) error {
	fs := flags("check", e)
	path := configFlag(fs, e)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := checkAll(*path)
	if err != nil {
		return usageError{fmt.Errorf("configuration %s:\n%s", *path, indent(err.Error()))}
	}
	for _, w := range cfg.Warnings {
		fmt.Fprintf(e.stdout, "warning: %s\n", w)
	}
	if err := cfg.Print(e.stdout); err != nil {
		return err
	}
	if err := describe(cfg, e.stdout, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# %s: OK, %d webhooks\n", *path, len(cfg.Webhooks))
	return nil
}

// checkAll returns every problem of the file in one error: the config's
// own, and those found reading the stores it kept (contents, passwords,
// client certificate expiry). A store with a config problem of its own
// (a missing file) is not in the config, so nothing is reported twice. A
// file without config problems is built whole, as run would.
func checkAll(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	var list config.ErrorList
	if err != nil && (cfg == nil || !errors.As(err, &list)) {
		return nil, err
	}
	silent := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err == nil {
		return cfg, relay.Check(cfg, silent)
	}
	return nil, errors.Join(err, relay.CheckStores(cfg, silent))
}
