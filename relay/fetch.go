package relay

import "net/http"

// fetchEvent serves GET /webhooks/<name>/events/<id>, the thin format's
// event-fetch API (SPEC §4).
func (r *Relay) fetchEvent(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "not implemented yet"})
}
