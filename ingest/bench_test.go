package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/internal/natstest"
)

// benchBody is a TheHive 3 style entry of the usual size, unique per n.
func benchBody(n int64) []byte {
	return fmt.Appendf(nil, `{"operation":"Creation","details":{"title":"Case %d","severity":2,"tlp":2,"tags":["bench"]},"objectType":"case","objectId":"AV6F%016d","base":true,"startDate":%d,"rootId":"AV6F%016d","requestId":"13b17ff13d1cfc56:2b7b048b:15e84f42c33:-8000:%d","object":{"_type":"case","title":"Case %d","severity":2,"owner":"admin","createdBy":"admin","status":"Open"}}`,
		n, n, 1505476659427+n, n, n, n)
}

func benchClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

func send(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Errorf("status %d", resp.StatusCode)
	}
}

// BenchmarkIngest16Senders: entries stored per second (JetStream file
// storage, acknowledged before each answer) from 16 concurrent senders.
//
//	go test ./ingest -run XXX -bench Ingest16 -benchtime 20000x
func BenchmarkIngest16Senders(b *testing.B) {
	e := newEnv(b, natstest.Start(b))
	s := e.start(b, ingestConfig())
	c := benchClient()
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := n.Add(1); i <= int64(b.N); i = n.Add(1) {
				send(b, c, s.URL(), benchBody(i))
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "entries/s")
}

// BenchmarkIngestLatencyAt500: receipt-to-answer latency as a sender
// sees it at a steady 500 entries per second (b.N of them), and the
// process's heap in use after the first second and at the end. The
// process holds the NATS server too: with -memprofile, the in-use profile
// at the end shows what grew (nats-server's own buffer pool, 8 MB once
// warm; nothing of the listener's).
//
//	go test ./ingest -run XXX -bench LatencyAt500 -benchtime 15000x -memprofile mem.out
func BenchmarkIngestLatencyAt500(b *testing.B) {
	e := newEnv(b, natstest.Start(b))
	keepLast(b, e, 1000)
	s := e.start(b, ingestConfig())
	c := benchClient()
	lat := make([]time.Duration, b.N)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	var wg sync.WaitGroup
	var first, last uint64
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		switch i {
		case 500:
			first = heapInUse()
		case b.N - 1:
			last = heapInUse()
		}
		wg.Go(func() {
			t0 := time.Now()
			send(b, c, s.URL(), benchBody(int64(i)))
			lat[i] = time.Since(t0)
		})
	}
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	if first > 0 {
		b.ReportMetric(float64(first)/(1<<20), "heap-MB-at-1s")
		b.ReportMetric(float64(last)/(1<<20), "heap-MB-at-end")
	}
}

// keepLast limits the audit stream to its last n entries, so that the
// in-process NATS server's own memory stays level and what the heap shows
// is the listener's.
func keepLast(b *testing.B, e *env, n int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.js.Stream(ctx, "THEHIVE_AUDIT")
	if err != nil {
		b.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgs = n
	if _, err := e.js.UpdateStream(ctx, cfg); err != nil {
		b.Fatal(err)
	}
}

// heapInUse is the process's live heap after a collection: the whole test
// process (NATS server, listener, senders), so growth here is growth of
// one of them.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
