package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// startupTable measures how long auditrelay takes, from exec to /readyz
// 200, on the embedded NATS server with a fresh store and 4 webhooks.
func startupTable(b binaries, o options) error {
	var ms []float64
	for i := range o.runs {
		d, err := startup(b.relay, o.webhooks)
		if err != nil {
			return fmt.Errorf("startup run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "  startup run %d: %v\n", i+1, d.Round(time.Millisecond))
		ms = append(ms, float64(d)/1e6)
	}
	fmt.Printf("ready on the embedded server (median of %d): %.0f ms\n", o.runs, median(ms))
	return nil
}

func startup(bin string, webhooks int) (time.Duration, error) {
	dir, err := os.MkdirTemp("", "auditrelay-startup")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	admin, err := freeAddr()
	if err != nil {
		return 0, err
	}
	nats, err := freeAddr()
	if err != nil {
		return 0, err
	}
	conf := fmt.Sprintf("auditrelay {\n  nats.embedded { enabled = true, listen = %q, storeDir = %q }\n  admin.listen = %q\n  log.level = warn\n}\nwebhooks {\n", nats, filepath.Join(dir, "nats"), admin)
	for i := range webhooks {
		conf += fmt.Sprintf("  w%d.url = \"http://127.0.0.1:9/w%d\"\n", i, i)
	}
	file := filepath.Join(dir, "application.conf")
	if err := os.WriteFile(file, []byte(conf+"}\n"), 0o600); err != nil {
		return 0, err
	}
	cmd := exec.Command(bin, "run", "-config", file)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	p := &proc{cmd: cmd}
	defer p.stop()
	err = until(30*time.Second, func() bool { return httpOK("http://" + admin + "/readyz") })
	return time.Since(start), err
}
