package gateway

import (
	"encoding/json"
	"io"
	"regexp"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// Redacted replaces a secret in the gateway's logs.
const Redacted = "[REDACTED]"

// secretWords make a name say that it holds a secret.
const secretWords = `token|secret|password|passwd|authorization|api[_-]?key|cookie|credential`

var (
	// secretField matches a JSON member whose name says it holds a secret
	// and whose value is a string, even an unterminated one.
	secretField = regexp.MustCompile(`(?i)("[a-z0-9_.-]*(?:` + secretWords + `)[a-z0-9_.-]*"\s*:\s*)"(?:[^"\\]|\\.)*"?`)
	// secretKey matches a decoded member name that says it holds a secret.
	secretKey = regexp.MustCompile(`(?i)` + secretWords)
)

// RedactSecrets returns s with the string value of every JSON member whose
// name says it holds a secret (token, secret, password, authorization, api
// key, cookie, credential) replaced by "[REDACTED]". It is the default of
// Config.Redact. See RedactSecretsWith.
func RedactSecrets(s string) string { return RedactSecretsWith(s, nil) }

// RedactSecretsWith is RedactSecrets that also passes every other string
// through value (nil: none), so that a caller can redact secrets it knows
// by their shape. Text that is one JSON value is decoded, so that escapes
// (a member named "tok\u0065n") hide nothing, and written again only if
// something was redacted; other text (a truncated message) is redacted by
// pattern, value applied to the whole of it.
func RedactSecretsWith(s string, value func(string) string) string {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err == nil {
		if _, err := d.Token(); err == io.EOF {
			if redactJSON(&v, value) {
				b, err := json.Marshal(v)
				if err == nil {
					return string(b)
				}
			}
			return s
		}
	}
	out := secretField.ReplaceAllString(s, `${1}"`+Redacted+`"`)
	if value != nil {
		out = value(out)
	}
	return out
}

// redactJSON redacts a decoded JSON value in place and reports whether it
// changed anything.
func redactJSON(v *any, value func(string) string) bool {
	changed := false
	switch x := (*v).(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && secretKey.MatchString(k) {
				if s != Redacted {
					x[k], changed = Redacted, true
				}
				continue
			}
			if redactJSON(&e, value) {
				x[k], changed = e, true
			}
		}
	case []any:
		for i := range x {
			if redactJSON(&x[i], value) {
				changed = true
			}
		}
	case string:
		if value != nil {
			if r := value(x); r != x {
				*v, changed = r, true
			}
		}
	}
	return changed
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
// its body through redact, and the values of headers, query parameters,
// stage variables and authorizer context keys that carry credentials
// replaced.
func redactedEvent(ev *events.APIGatewayWebsocketProxyRequest, redact func(string) string) []byte {
	cp := *ev
	cp.Body = redact(ev.Body)
	cp.Headers = redactMap(ev.Headers)
	cp.QueryStringParameters = redactMap(ev.QueryStringParameters)
	cp.MultiValueHeaders = redactMultiMap(ev.MultiValueHeaders)
	cp.MultiValueQueryStringParameters = redactMultiMap(ev.MultiValueQueryStringParameters)
	cp.StageVariables = redactMap(ev.StageVariables)
	if a, ok := ev.RequestContext.Authorizer.(map[string]any); ok {
		cp.RequestContext.Authorizer = redactAuthorizer(a)
	}
	b, _ := json.Marshal(&cp)
	return b
}

// redactedAuthorizerEvent is redactedEvent for the event of a $connect
// authorizer.
func redactedAuthorizerEvent(ev *authorizerRequest) []byte {
	cp := *ev
	cp.Headers = redactMap(ev.Headers)
	cp.QueryStringParameters = redactMap(ev.QueryStringParameters)
	cp.MultiValueHeaders = redactMultiMap(ev.MultiValueHeaders)
	cp.MultiValueQueryStringParameters = redactMultiMap(ev.MultiValueQueryStringParameters)
	cp.StageVariables = redactMap(ev.StageVariables)
	b, _ := json.Marshal(&cp)
	return b
}

// redactAuthorizer returns requestContext.authorizer with the string
// values of keys that name a credential replaced.
func redactAuthorizer(a map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		if s, ok := v.(string); ok && s != "" && secretName(k) {
			v = Redacted
		}
		out[k] = v
	}
	return out
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
