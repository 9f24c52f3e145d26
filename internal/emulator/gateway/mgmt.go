package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
)

// mgmtHandler serves the @connections management API of the stage, as
// API Gateway does: restJson1 errors with X-Amzn-ErrorType, so that the AWS
// SDK maps them to *types.GoneException and the like. Requests are not
// authenticated: any SigV4 signature, or none, is accepted.
func (g *Gateway) mgmtHandler() http.Handler {
	prefix := "/" + g.cfg.Stage + "/@connections/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The canonical form of X-Amzn-RequestId, set as Header.Set would
		// without canonicalizing it on every call.
		w.Header()["X-Amzn-Requestid"] = []string{newID()}
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
		id, err := url.PathUnescape(rest) // the SDK escapes "=" as %3D
		if !ok || rest == "" || strings.Contains(rest, "/") || err != nil {
			awsError(w, http.StatusForbidden, "ForbiddenException", "Forbidden")
			return
		}
		switch r.Method {
		case http.MethodPost:
			g.postToConnection(w, r, id)
		case http.MethodGet:
			g.getConnection(w, id)
		case http.MethodDelete:
			g.deleteConnection(w, id)
		default:
			awsError(w, http.StatusForbidden, "ForbiddenException", "Forbidden")
		}
	})
}

// awsError writes an error the way API Gateway's management API does.
func awsError(w http.ResponseWriter, status int, errType, message string) {
	w.Header().Set("X-Amzn-ErrorType", errType)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Message string `json:"message"`
	}{message})
}

func (g *Gateway) postToConnection(w http.ResponseWriter, r *http.Request, id string) {
	max := g.cfg.MaxMessageBytes
	body, size, err := readBody(r.Body, r.ContentLength, max)
	if err != nil {
		awsError(w, http.StatusBadRequest, "BadRequestException", "could not read the request body")
		return
	}
	if size > max {
		awsError(w, http.StatusRequestEntityTooLarge, "PayloadTooLargeException",
			"Request body exceeds the maximum size of "+strconv.Itoa(max)+" bytes")
		g.called("POST", id, http.StatusRequestEntityTooLarge, nil, size)
		return
	}
	c, ok := g.lookup(id)
	if !ok {
		awsError(w, http.StatusGone, "GoneException", "")
		g.called("POST", id, http.StatusGone, body, len(body))
		return
	}
	switch err := c.send(ws.OpText, body); {
	case errors.Is(err, errBusy):
		awsError(w, http.StatusTooManyRequests, "LimitExceededException", "the client is not reading fast enough")
		g.called("POST", id, http.StatusTooManyRequests, body, len(body))
	case err != nil:
		awsError(w, http.StatusGone, "GoneException", "")
		g.called("POST", id, http.StatusGone, body, len(body))
	default:
		w.WriteHeader(http.StatusOK)
		g.called("POST", id, http.StatusOK, body, len(body))
	}
}

// readBody reads a request body of at most max bytes and returns it with
// its size; a size over max means the body is longer, and then body is
// not all of it. A body whose length is known (length >= 0, as the SDK and
// HTTP/1.1 clients send it) is read in one allocation of its exact size.
// It returns the error of a body cut short.
func readBody(r io.Reader, length int64, max int) (body []byte, size int, err error) {
	switch {
	case length > int64(max):
		return nil, int(min(length, int64(max)+1)), nil
	case length >= 0:
		body = make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, 0, err
		}
		return body, len(body), nil
	}
	body, err = io.ReadAll(io.LimitReader(r, int64(max)+1))
	return body, len(body), err
}

func (g *Gateway) getConnection(w http.ResponseWriter, id string) {
	c, ok := g.lookup(id)
	if !ok {
		awsError(w, http.StatusGone, "GoneException", "")
		g.called("GET", id, http.StatusGone, nil, 0)
		return
	}
	type identity struct {
		SourceIP  string `json:"sourceIp"`
		UserAgent string `json:"userAgent"`
	}
	iso := func(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(struct {
		ConnectedAt  string   `json:"connectedAt"`
		Identity     identity `json:"identity"`
		LastActiveAt string   `json:"lastActiveAt"`
	}{iso(c.connectedAt), identity{c.sourceIP, c.userAgent}, iso(time.Unix(0, c.lastReceived.Load()))})
	g.called("GET", id, http.StatusOK, nil, 0)
}

func (g *Gateway) deleteConnection(w http.ResponseWriter, id string) {
	c, ok := g.lookup(id)
	if !ok {
		awsError(w, http.StatusGone, "GoneException", "")
		g.called("DELETE", id, http.StatusGone, nil, 0)
		return
	}
	c.shutdown(closeNormal, "", int(closeNormal), "Connection Closed Normally")
	w.WriteHeader(http.StatusNoContent)
	g.called("DELETE", id, http.StatusNoContent, nil, 0)
}

// called logs a management API call (always when it failed, and every call
// with Verbose) and reports a POST or a DELETE to the observer: body is a
// POST's, size its size in bytes.
func (g *Gateway) called(method, id string, status int, body []byte, size int) {
	if status >= 300 || g.cfg.Verbose {
		g.log.Info("@connections", "method", method, "conn", id, "status", status, "bytes", size)
	}
	switch method {
	case http.MethodPost:
		g.observe(Observation{Kind: ObservedSend, ConnectionID: id, Via: ViaPost, Status: status, Body: body, Size: size})
	case http.MethodDelete:
		g.observe(Observation{Kind: ObservedDelete, ConnectionID: id, Status: status})
	}
}

// ManagementTransport returns an http.RoundTripper that serves requests with
// the management API's own handler, in memory. Functions running in this
// process give it to their AWS SDK client: the SDK serializes, signs,
// retries and reads errors exactly as over the network, without the cost of
// a loopback HTTP connection per call.
func (g *Gateway) ManagementTransport() http.RoundTripper { return memTransport{g.mgmt.Handler} }

// HandlerTransport returns an http.RoundTripper that serves requests with
// h, in memory, as ManagementTransport does with the gateway's own
// handler: for a client of an API that a test or a benchmark stands in
// for.
func HandlerTransport(h http.Handler) http.RoundTripper { return memTransport{h} }

type memTransport struct{ h http.Handler }

func (t memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	// What a server sees, which is not quite what a client sends: a body
	// that is never nil, the request URI, the host, a remote address. A
	// shallow copy is enough: a handler does not modify its request beyond
	// reading the body (net/http's rule), so the client's header and URL
	// are shared rather than cloned on every call.
	sreq := new(http.Request)
	*sreq = *req
	switch {
	case sreq.Body == nil:
		sreq.Body = http.NoBody
	case sreq.ContentLength == 0 && sreq.Body != http.NoBody:
		// A client's 0 with a body means "unknown"; a server's, "empty".
		sreq.ContentLength = -1
	}
	sreq.RequestURI = req.URL.RequestURI()
	if sreq.Host == "" {
		sreq.Host = req.URL.Host
	}
	sreq.RemoteAddr = "127.0.0.1:0"
	w := &memResponse{header: make(http.Header, 2)}
	func() {
		defer func() {
			if r := recover(); r != nil {
				w = &memResponse{header: http.Header{}}
				awsError(w, http.StatusInternalServerError, "InternalServerError", "internal error")
			}
		}()
		t.h.ServeHTTP(w, sreq)
	}()
	if w.status == 0 {
		w.status = http.StatusOK
	}
	resp := &http.Response{
		Status:     statusLine(w.status),
		StatusCode: w.status,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     w.header,
		Body:       http.NoBody,
		Request:    req,
	}
	if n := w.body.Len(); n > 0 {
		resp.Body = io.NopCloser(bytes.NewReader(w.body.Bytes()))
		resp.ContentLength = int64(n)
	}
	return resp, nil
}

// statusLine returns an HTTP status as a response's Status holds it,
// "200 OK", without building the common ones on every call.
func statusLine(status int) string {
	switch status {
	case http.StatusOK:
		return "200 OK"
	case http.StatusGone:
		return "410 Gone"
	case http.StatusTooManyRequests:
		return "429 Too Many Requests"
	}
	return strconv.Itoa(status) + " " + http.StatusText(status)
}

// memResponse is an http.ResponseWriter that keeps the response in memory.
type memResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *memResponse) Header() http.Header { return w.header }

func (w *memResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *memResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
