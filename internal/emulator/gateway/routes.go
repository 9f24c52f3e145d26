package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// selector evaluates a route selection expression of the form
// $request.body.PATH (or ${request.body.PATH}) against a message body.
type selector struct {
	path []string // nil: every message goes to $default
}

func parseSelector(expr string) (selector, error) {
	e := strings.TrimSpace(expr)
	if strings.HasPrefix(e, "${") && strings.HasSuffix(e, "}") {
		e = "$" + e[2:len(e)-1]
	}
	if e == "$default" {
		return selector{}, nil
	}
	rest, ok := strings.CutPrefix(e, "$request.body.")
	if !ok || rest == "" {
		return selector{}, fmt.Errorf("localgw: route selection expression %q: only $request.body.<path> is supported", expr)
	}
	return selector{path: strings.Split(rest, ".")}, nil
}

// key returns the selected route key: the value at the path, made a string
// (strings as they are, numbers and booleans as written), or "" when the
// body is not JSON or has no scalar value there.
func (s selector) key(body []byte) string {
	if s.path == nil {
		return ""
	}
	var v any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&v) != nil {
		return ""
	}
	if _, err := d.Token(); err != io.EOF { // trailing data: not JSON
		return ""
	}
	for _, p := range s.path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	default:
		return ""
	}
}

// route picks the route for a message: the one whose key the selection
// expression yields, else $default, else none.
func (g *Gateway) route(body []byte) (Route, bool) {
	if !g.customRoutes {
		r, ok := g.routes["$default"] // nothing to select: skip decoding the body
		return r, ok
	}
	if k := g.selector.key(body); k != "" && !strings.HasPrefix(k, "$") {
		if r, ok := g.routes[k]; ok {
			return r, true
		}
	}
	r, ok := g.routes["$default"]
	return r, ok
}
