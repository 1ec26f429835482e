package config

import (
	"crypto/tls"
	"time"
)

// Default returns auditrelay's defaults (SPEC §2.4), over which a file is
// decoded.
func Default() Auditrelay {
	return Auditrelay{
		NATS: NATS{
			URL:           "nats://127.0.0.1:4222",
			Embedded:      Embedded{Listen: "127.0.0.1:4222", StoreDir: "data/nats"},
			Subject:       "thehive.audit.>",
			Stream:        Stream{Name: "THEHIVE_AUDIT", Create: true, MaxAge: 30 * 24 * time.Hour, Replicas: 1},
			DurablePrefix: "auditrelay",
			MaxEntryBytes: 1 << 20,
		},
		DeadLetter: DeadLetter{Subject: "auditrelay.deadletter"},
		Admin:      Admin{Listen: "127.0.0.1:9464"},
		Ingest: Ingest{
			Listen: "127.0.0.1:9465", Subject: "thehive.audit", Auth: Auth{Type: AuthNone},
			MaxEntryBytes: 1 << 20, // auditrelay.nats.maxEntryBytes, unless set
		},
		Log:             Log{Level: "info", Format: "json"},
		ShutdownTimeout: 30 * time.Second,
	}
}

// DefaultWS returns the HTTP client defaults under every layer of ws
// settings (SPEC §2.1).
func DefaultWS() WS {
	return WS{
		FollowRedirects:    true,
		Timeout:            Timeout{Connection: 10 * time.Second, Idle: 30 * time.Second, Request: 30 * time.Second},
		UseProxyProperties: true,
		SSL:                SSL{Protocol: tls.VersionTLS12},
	}
}

// DefaultWebhook returns a webhook's defaults (SPEC §2.3), before its keys.
func DefaultWebhook() Webhook {
	return Webhook{
		WS:       DefaultWS(),
		Auth:     Auth{Type: AuthNone},
		Format:   FormatAudit,
		Template: Template{ContentType: "application/json"},
		Splunk:   Splunk{Sourcetype: "thehive:audit", Source: "auditrelay"},
		Batch:    Batch{MaxEntries: 1},
		Delivery: Delivery{
			Start:       Start{Mode: StartNew},
			MaxInFlight: 64,
			OrderBy:     OrderByRootID,
			Retry: Retry{
				MaxAttempts:    15,
				InitialBackoff: time.Second,
				MaxBackoff:     10 * time.Minute,
				MaxAge:         72 * time.Hour,
			},
		},
		Filter:  Filter{IncludedOrganisations: []string{"*"}},
		Enabled: true,
	}
}
