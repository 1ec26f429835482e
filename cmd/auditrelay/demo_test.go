package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `auditrelay demo` to completion in-process: every receiver
// got every seed entry, the proxied one through a CONNECT tunnel, and the command exits 0.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
	start := time.Now()
	if code := run(ctx, []string{"demo", "-timeout", "30s"}, e); code != exitOK {
		t.Fatalf("demo exited %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("demo took %v", d)
	}
	out := stdout.String()
	n := strings.Count(strings.TrimSpace(string(demoEntries)), "\n") + 1
	ids := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(demoEntries)), "\n") {
		ids[demoObjectID(line)] = true
	}
	for _, name := range []string{"jks", "pem", "proxied"} {
		row := regexp.MustCompile(`(?m)^` + name + `\s+.*?\s+(\d+)/(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$`).FindStringSubmatch(out)
		if row == nil {
			t.Errorf("no row for receiver %s in:\n%s", name, out)
			continue
		}
		if want := strconv.Itoa(n); row[1] != want || row[2] != want {
			t.Errorf("%s got %s/%s entries, want %d/%d", name, row[1], row[2], n, n)
		}
		// Only entries with the same rootId keep their order; first and last
		// are whichever seed entries came so.
		if !ids[row[3]] || !ids[row[4]] {
			t.Errorf("%s: first/last objectId %s/%s are not seed entries", name, row[3], row[4])
		}
		for _, d := range row[5:7] {
			if _, err := time.ParseDuration(d); err != nil {
				t.Errorf("%s: latency %q: %v", name, d, err)
			}
		}
	}
	if m := regexp.MustCompile(`proxy: (\d+) CONNECT tunnel`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("no CONNECT tunnel reported:\n%s", out)
	}
	if dir := regexp.MustCompile(`files in (\S+)`).FindStringSubmatch(out); dir == nil {
		t.Errorf("no temporary directory reported:\n%s", out)
	} else if _, err := os.Stat(dir[1]); !os.IsNotExist(err) {
		t.Errorf("demo left %s behind (stat: %v)", dir[1], err)
	}
}
