package handler

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/mastersocket/mastersocket/internal/authorizer"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// Keys of the context that the $connect authorizer returns. API Gateway
// passes them, beside principalId, in requestContext.authorizer of every
// event of the connection.
const (
	ContextServiceID = "serviceId"
	ContextGroup     = "group"
	ContextTokenID   = "tokenId"
)

// AuthorizerRequest is the event of a Lambda REQUEST authorizer of a
// WebSocket API's $connect route, as AWS documents it in "Control access to
// WebSocket APIs with AWS Lambda REQUEST authorizers": the $connect request
// (headers, query string, stage variables, its WebSocket request context)
// with the type and the ARN of the $connect method. aws-lambda-go has no
// type for it: its authorizer request types carry a REST request context.
type AuthorizerRequest struct {
	Type                            string                                        `json:"type"`
	MethodArn                       string                                        `json:"methodArn"`
	Headers                         map[string]string                             `json:"headers,omitempty"`
	MultiValueHeaders               map[string][]string                           `json:"multiValueHeaders,omitempty"`
	QueryStringParameters           map[string]string                             `json:"queryStringParameters,omitempty"`
	MultiValueQueryStringParameters map[string][]string                           `json:"multiValueQueryStringParameters,omitempty"`
	StageVariables                  map[string]string                             `json:"stageVariables,omitempty"`
	RequestContext                  events.APIGatewayWebsocketProxyRequestContext `json:"requestContext"`
}

// errUnauthorized is the error whose message API Gateway turns into 401.
var errUnauthorized = errors.New("Unauthorized")

// Authorize is the $connect authorizer: it checks the handshake's token
// and group (see internal/authorizer) and answers with a policy allowing
// the $connect method and a context holding the connection's identity
// (serviceId, group, tokenId), which $connect records and every later event
// carries. A handshake without a valid token fails with "Unauthorized"
// (HTTP 401); one whose token does not allow its group is denied (403); a
// store failure is an error (500).
func (h *Handlers) Authorize(ctx context.Context, req AuthorizerRequest) (events.APIGatewayCustomAuthorizerResponse, error) {
	rc := req.RequestContext
	hs := authorizer.Handshake{Headers: req.MultiValueHeaders, Query: req.MultiValueQueryStringParameters}
	if hs.Headers == nil {
		hs.Headers = single(req.Headers)
	}
	if hs.Query == nil {
		hs.Query = single(req.QueryStringParameters)
	}
	ctx, rec := begin(ctx, rc.Stage, rc.RequestID, rc.ConnectionID)
	defer h.emit(ctx, rec)
	id, err := h.auth.Authorize(ctx, hs)
	var refusal *authorizer.Refusal
	switch {
	case errors.As(err, &refusal) && refusal.Unauthorized:
		rec.Identify(refusal.Outcome)
		h.log.InfoContext(ctx, "$connect unauthorized", "sourceIp", rc.Identity.SourceIP, "reason", refusal.Reason)
		return events.APIGatewayCustomAuthorizerResponse{}, errUnauthorized
	case errors.As(err, &refusal):
		rec.Identify(refusal.Outcome)
		h.log.InfoContext(ctx, "$connect denied", "sourceIp", rc.Identity.SourceIP, "reason", refusal.Reason)
		return policy("anonymous", "Deny", req.MethodArn, nil), nil
	case err != nil:
		rec.Identify(telemetry.OutcomeError)
		h.log.ErrorContext(ctx, "$connect authorizer failed", "err", err)
		return events.APIGatewayCustomAuthorizerResponse{}, err
	}
	rec.Identify(telemetry.OutcomeOK)
	rec.SetService(id.ServiceID)
	h.log.DebugContext(ctx, "$connect authorized", "tokenId", id.TokenID, "group", id.Group)
	return policy(id.TokenID, "Allow", req.MethodArn, map[string]any{
		ContextServiceID: id.ServiceID,
		ContextGroup:     id.Group,
		ContextTokenID:   id.TokenID,
	}), nil
}

func policy(principal, effect, methodArn string, context map[string]any) events.APIGatewayCustomAuthorizerResponse {
	return events.APIGatewayCustomAuthorizerResponse{
		PrincipalID: principal,
		PolicyDocument: events.APIGatewayCustomAuthorizerPolicy{
			Version: "2012-10-17",
			Statement: []events.IAMPolicyStatement{{
				Action:   []string{"execute-api:Invoke"},
				Effect:   effect,
				Resource: []string{methodArn},
			}},
		},
		Context: context,
	}
}

func single(m map[string]string) map[string][]string {
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = []string{v}
	}
	return out
}

// vouchedIdentity returns the identity that the $connect authorizer gave
// the connection, from an event's requestContext.authorizer, or nil when
// the connection came in without one (connect auth off). An authorizer
// context that names a service but not validly is an error.
func vouchedIdentity(rc events.APIGatewayWebsocketProxyRequestContext) (*router.Identity, error) {
	ctx, ok := rc.Authorizer.(map[string]any)
	if !ok {
		return nil, nil
	}
	sid, hasSID := ctx[ContextServiceID]
	if !hasSID {
		return nil, nil
	}
	service, ok1 := sid.(string)
	group, ok2 := ctx[ContextGroup].(string)
	if !ok1 || !ok2 || service == "" || group == "" {
		return nil, fmt.Errorf("authorizer context %s=%v %s=%v: want two strings", ContextServiceID, sid, ContextGroup, ctx[ContextGroup])
	}
	return &router.Identity{ServiceID: service, Group: group}, nil
}

// subprotocol returns the Sec-WebSocket-Protocol header of the $connect
// response: "mastersocket" when the client offered it (a browser that sends
// its token as a subprotocol refuses a handshake that selects none of those
// it offered), nothing otherwise. The token itself is never echoed.
func subprotocol(ev events.APIGatewayWebsocketProxyRequest) map[string]string {
	values := ev.MultiValueHeaders
	if values == nil {
		values = single(ev.Headers)
	}
	for k, vs := range values {
		if !strings.EqualFold(k, authorizer.HeaderSubprotocol) {
			continue
		}
		for _, v := range vs {
			for _, p := range strings.Split(v, ",") {
				if strings.TrimSpace(p) == authorizer.Subprotocol {
					return map[string]string{authorizer.HeaderSubprotocol: authorizer.Subprotocol}
				}
			}
		}
	}
	return nil
}
