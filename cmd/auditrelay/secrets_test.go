package main

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditrelay/auditrelay/config"
	"github.com/auditrelay/auditrelay/internal/echotest"
	"github.com/auditrelay/auditrelay/internal/natstest"
)

// Secrets the echo endpoint gets back in the request, each distinctive.
const (
	cmdPathToken = "pathS3CRETtoken3001abcdef"
	cmdQuery     = "query-S3CRET-3002"
	cmdURLPass   = "urlpass-S3CRET-3003"
	cmdBearer    = "bearer-S3CRET-3004"
	cmdHeader    = "header-S3CRET-3005"
	cmdProxyPass = "proxy-S3CRET-3006"
)

func cmdSecrets() []string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return []string{"/services/T0CMD30001/B0CMD30002/" + cmdPathToken, cmdPathToken, "T0CMD30001", "B0CMD30002",
		cmdQuery, cmdURLPass, b64("relay:" + cmdURLPass), cmdBearer, cmdHeader, b64(cmdHeader), cmdProxyPass}
}

// TestCommandsShowNoSecret: a webhook whose URL carries secrets in
// userinfo, path and query, with a bearer key, a configured header and a
// proxy password, against an endpoint that echoes each request back in its
// 400. `check`, `send-test` and `deadletter list` (table and JSON) show
// the URL as scheme://host:port/**** and none of the secrets; the echoed
// path, query and headers read ****.
func TestCommandsShowNoSecret(t *testing.T) {
	echo := echotest.Server(t, 0, 40)
	srv := natstest.Start(t)
	_, js := natstest.Connect(t, srv)
	withUser := strings.Replace(echo.URL, "http://", "http://relay:"+cmdURLPass+"@", 1)
	file := toolConfig(t, srv, fmt.Sprintf(`webhooks.slack {
  url = "%s/services/T0CMD30001/B0CMD30002/%s?token=%s"
  auth { type = bearer, key = %q }
  headers { "X-Api-Key" = %q }
  ws.proxy { host = "127.0.0.1", port = 9, user = px, password = %q, nonProxyHosts = ["127.0.0.1"] }
}`, withUser, cmdPathToken, cmdQuery, cmdBearer, cmdHeader, cmdProxyPass))
	redacted := config.RedactURL(echo.URL)

	var shown strings.Builder
	code, out, errOut := runTool(t, "check", "-config", file)
	if code != 0 || !strings.Contains(out, `url = "`+redacted+`"`) || !strings.Contains(out, `"X-Api-Key" = "****"`) {
		t.Errorf("check: exit %d, want 0 with url %s and the header ****:\n%s%s", code, redacted, out, errOut)
	}
	shown.WriteString(out + errOut)

	code, out, errOut = runTool(t, "send-test", "-config", file)
	if code == 0 || !strings.Contains(out, "slack  "+redacted+"\n") || !strings.Contains(out, "400 Bad Request: path=**** query=****") {
		t.Errorf("send-test: exit %d, want 1 naming %s with the echo scrubbed:\n%s%s", code, redacted, out, errOut)
	}
	shown.WriteString(out + errOut)

	stop := runSidecar(t, js, file, "slack")
	toolPublish(t, js, toolEntry("Creation", "case", 1))
	toolWait(t, 10*time.Second, "the dead letter", func() bool { return deadLetterCount(t, js, "auditrelay.deadletter.slack") == 1 })
	stop()
	for _, args := range [][]string{{"list"}, {"list", "-json"}} {
		code, out, errOut = runTool(t, append([]string{"deadletter", "-config", file}, args...)...)
		if code != 0 || !strings.Contains(out, "HTTP 400: path=**** query=****") || !strings.Contains(out, "X-Api-Key: ****") {
			t.Errorf("deadletter %v: exit %d, want the reason scrubbed:\n%s%s", args, code, out, errOut)
		}
		shown.WriteString(out + errOut)
	}
	for _, s := range cmdSecrets() {
		if strings.Contains(shown.String(), s) {
			t.Errorf("secret %q shown:\n%s", s, shown.String())
		}
	}
}
