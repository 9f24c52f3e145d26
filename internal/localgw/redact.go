package localgw

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Redacted replaces a secret in the gateway's logs.
const Redacted = "[REDACTED]"

// secretField matches a JSON member whose name says it holds a secret
// (token, secret, password, authorization, api key, cookie, credential)
// and whose value is a string, even an unterminated one.
var secretField = regexp.MustCompile(`(?i)("[a-z0-9_.-]*(?:token|secret|password|passwd|authorization|api[_-]?key|cookie|credential)[a-z0-9_.-]*"\s*:\s*)"(?:[^"\\]|\\.)*"?`)

// RedactSecrets returns s with the string value of every JSON member whose
// name says it holds a secret replaced by "[REDACTED]". It works on text
// that is not valid JSON too (a truncated message), and is the default of
// Config.Redact.
func RedactSecrets(s string) string {
	return secretField.ReplaceAllString(s, `${1}"`+Redacted+`"`)
}

// secretName reports whether a header or query parameter name says it
// carries a credential.
func secretName(name string) bool {
	n := strings.ToLower(name)
	switch n {
	case "authorization", "proxy-authorization", "cookie", "x-api-key", "sec-websocket-protocol":
		return true
	}
	for _, part := range []string{"token", "secret", "password", "key", "auth", "signature", "credential"} {
		if strings.Contains(n, part) {
			return true
		}
	}
	return false
}

// redactedEvent returns the JSON of an event as the verbose log shows it:
// its body through redact, and the values of headers and query parameters
// that carry credentials replaced.
func redactedEvent(ev *events.APIGatewayWebsocketProxyRequest, redact func(string) string) []byte {
	cp := *ev
	cp.Body = redact(ev.Body)
	cp.Headers = redactMap(ev.Headers)
	cp.QueryStringParameters = redactMap(ev.QueryStringParameters)
	cp.MultiValueHeaders = redactMultiMap(ev.MultiValueHeaders)
	cp.MultiValueQueryStringParameters = redactMultiMap(ev.MultiValueQueryStringParameters)
	b, _ := json.Marshal(&cp)
	return b
}

func redactMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if secretName(k) && v != "" {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

func redactMultiMap(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, vs := range m {
		if secretName(k) {
			red := make([]string, len(vs))
			for i := range red {
				red[i] = Redacted
			}
			vs = red
		}
		out[k] = vs
	}
	return out
}
