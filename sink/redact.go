package sink

import "net/url"

// RedactURL returns u without userinfo and query, which may carry
// credentials, for logs, errors and `check`.
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	if p.User != nil {
		p.User = url.User("****")
	}
	if p.RawQuery != "" {
		p.RawQuery = "****"
	}
	return p.String()
}
