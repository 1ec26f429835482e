package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/relay"
	"github.com/auditrelay/auditrelay/sink"
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
	log.Info("auditrelay starting", "version", version, "config", cfg.File, "admin", r.AdminAddr())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for {
		select {
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
	if err := relay.Describe(cfg, e.stdout, time.Now()); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "# %s: OK, %d webhooks\n", *path, len(cfg.Webhooks))
	return nil
}

// checkAll returns every problem of the file in one error: the config's
// own, and those found by building each webhook it could decode (store
// contents, passwords, client certificate expiry). A webhook that has a
// config problem is not built, but its stores whose keys parsed are still
// read, so nothing is hidden and nothing is reported twice.
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
	clean := *cfg
	clean.Webhooks = nil
	var storeErrs []error
	for _, wh := range cfg.Webhooks {
		if !hasProblemUnder(list, wh.KeyPath) {
			clean.Webhooks = append(clean.Webhooks, wh)
			continue
		}
		ssl := &wh.WS.SSL
		ssl.TrustManager.Stores = storesWithoutProblem(list, ssl.TrustManager.Stores)
		ssl.KeyManager.Stores = storesWithoutProblem(list, ssl.KeyManager.Stores)
		storeErrs = append(storeErrs, sink.CheckStores(&wh, time.Now()))
	}
	if hasProblemUnder(list, "auditrelay.nats.tls") {
		clean.Auditrelay.NATS.TLS = config.TLS{}
	}
	in := &clean.Auditrelay.Ingest.TLS
	if hasProblemUnder(list, "auditrelay.ingest.tls.keyManager") {
		in.KeyManager = config.StoreSet{}
	}
	if hasProblemUnder(list, "auditrelay.ingest.tls.trustManager") {
		in.TrustManager = config.StoreSet{}
	}
	return nil, errors.Join(err, errors.Join(storeErrs...), relay.Check(&clean, silent))
}

func storesWithoutProblem(list config.ErrorList, stores []config.Store) []config.Store {
	var out []config.Store
	for _, s := range stores {
		if !hasProblemUnder(list, s.KeyPath) {
			out = append(out, s)
		}
	}
	return out
}

func hasProblemUnder(list config.ErrorList, prefix string) bool {
	for _, fe := range list {
		if fe.Path == prefix || strings.HasPrefix(fe.Path, prefix+".") || strings.HasPrefix(fe.Path, prefix+"[") {
			return true
		}
	}
	return false
}
