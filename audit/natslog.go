package audit

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// slowEvery is how often the NATS client's drops from a full pull buffer
// are reported at most.
const slowEvery = 30 * time.Second

// natsErrors logs the NATS client's asynchronous errors. A pull
// subscription whose buffer is full makes the client drop what still
// arrives ("slow consumer"): under a sustained drain that happens now and
// then, harmlessly, since an entry dropped there was never acknowledged
// and JetStream delivers it again once its AckWait expires (a webhook's
// pinned consumer holds back what follows it meanwhile, see gatherTakeover).
// So those are counted and reported at most once per slowEvery, with the
// number of times since the last report, instead of one line each.
type natsErrors struct {
	log *slog.Logger
	now func() time.Time

	mu       sync.Mutex
	lastSaid time.Time
	dropped  int
}

func (n *natsErrors) handle(_ *nats.Conn, _ *nats.Subscription, err error) {
	if !errors.Is(err, nats.ErrSlowConsumer) {
		n.log.Warn("NATS error", "err", err)
		return
	}
	n.mu.Lock()
	n.dropped++
	now := n.now()
	if !n.lastSaid.IsZero() && now.Sub(n.lastSaid) < slowEvery {
		n.mu.Unlock()
		return
	}
	dropped := n.dropped
	n.dropped, n.lastSaid = 0, now
	n.mu.Unlock()
	n.log.Warn("the NATS client dropped messages from a full pull buffer; JetStream delivers a dropped entry again once its AckWait expires",
		"times", dropped, "reportedEvery", slowEvery)
}
