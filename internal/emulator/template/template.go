// Package template reads the SAM template (template.yaml) with goformation,
// resolving intrinsics to logical ids so that routes, integrations, functions
// and policies can be followed.
//
// Intrinsic functions are not evaluated (there is no stack to evaluate them
// against): each is rendered as a string that keeps the names it refers to.
//
//	Ref X                     "ref:X"  (X a parameter, a resource or a pseudo parameter: "ref:AWS::Region")
//	Ref AWS::NoValue          null, so the property is absent, as in CloudFormation
//	Fn::GetAtt [X, Attr]      "getatt:X.Attr"
//	Fn::Sub "tmpl"            tmpl unchanged, its ${...} kept: "https://${WebSocketApi}.execute-api.${AWS::Region}..."
//	Fn::Sub [tmpl, {k: v}]    tmpl with ${k} replaced by ${X} when v is Ref X, ${X.Attr} when v is
//	                          Fn::GetAtt X.Attr, and by v itself when v is a plain string
//
// The other intrinsics (Fn::Join, Fn::Select, ...) keep goformation's own
// handling, working on the rendered strings above. Expand turns a rendered
// value into a concrete one given the values of the names.
//
// Conditions are evaluated as CloudFormation evaluates them, with the
// parameters' defaults and any overrides (see ParseWithParameters) and the
// local gateway's pseudo parameters (AWS::Region us-east-1, AWS::AccountId
// 000000000000, AWS::Partition aws, AWS::StackName mastersocket-local): a
// resource or output whose Condition is false is not in the Template, each
// Fn::If is replaced by the branch its condition chooses, and a property
// whose value is Ref AWS::NoValue is absent. Conditions may use Fn::Equals,
// Fn::Not, Fn::And, Fn::Or and Condition, and compare literals, Refs to
// parameters, and Fn::Sub and Fn::Join of those. CFN.Conditions holds each
// condition's result, true or false.
//
// SAM Globals are merged into each function the way SAM merges them (see
// Functions); goformation parses them but does not merge them.
//
// CFN leaves out what nothing here reads and goformation would refuse the
// template for: the resources of untypedResources (log groups, alarms, the
// dashboard, the API Gateway account setting and IAM roles) and the
// function properties of untypedFunctionProperties (LoggingConfig). The
// template's checks read them from the raw tree.
package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/awslabs/goformation/v7/cloudformation"
	"github.com/awslabs/goformation/v7/cloudformation/apigatewayv2"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// Prefixes of the strings that stand for Ref and Fn::GetAtt.
const (
	RefPrefix    = "ref:"
	GetAttPrefix = "getatt:"
)

// Template is a parsed SAM template.
type Template struct {
	// CFN is the template as goformation parsed it, intrinsics rendered as
	// described in the package documentation.
	CFN *cloudformation.Template
	// Dir is the directory of the template file; CodeUri paths are relative
	// to it.
	Dir string

	// raw is the same template as generic JSON values: goformation's typed
	// Policies lose entries it does not know (see policies).
	raw map[string]any
	// params are the parameter values the conditions were evaluated with.
	params map[string]string
}

// Load reads and parses the SAM template at path, evaluating its
// conditions with the parameters' defaults. It fails as
// LoadWithParameters does.
func Load(path string) (*Template, error) {
	return LoadWithParameters(path, nil)
}

// LoadWithParameters reads and parses the SAM template at path, evaluating
// its conditions with the parameters' defaults overridden by overrides
// (parameter name → value). It fails if the file cannot be read, or as
// ParseWithParameters does; the error names the file.
func LoadWithParameters(path string, overrides map[string]string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseWithParameters(data, filepath.Dir(path), overrides)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// processMu serialises intrinsics.ProcessYAML, which registers its YAML tag
// resolvers in a package-level map on every call: concurrent calls race.
var processMu sync.Mutex

// Parse parses a SAM template (YAML or JSON), evaluating its conditions
// with the parameters' defaults; dir is the directory CodeUri paths are
// relative to. It fails as ParseWithParameters does.
func Parse(data []byte, dir string) (*Template, error) {
	return ParseWithParameters(data, dir, nil)
}

// ParseWithParameters parses a SAM template (YAML or JSON) and evaluates
// its conditions with the parameters' defaults overridden by overrides
// (parameter name → value), as described in the package documentation; dir
// is the directory CodeUri paths are relative to. It fails if the template
// cannot be read, if an override is refused by CheckParameter (every such
// error, joined), if a condition cannot be evaluated (an undefined name, a
// cycle, a function it does not support), or if a resource or output that
// is created refers to one that is not.
func ParseWithParameters(data []byte, dir string, overrides map[string]string) (*Template, error) {
	// Short forms (!Sub, !If...) to long forms, nothing evaluated yet.
	processMu.Lock()
	longForm, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: true})
	processMu.Unlock()
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := json.Unmarshal(longForm, &tree); err != nil {
		return nil, fmt.Errorf("template is not a mapping: %w", err)
	}
	var declared cloudformation.Parameters
	if p, ok := tree["Parameters"]; ok {
		b, _ := json.Marshal(p)
		if err := json.Unmarshal(b, &declared); err != nil {
			return nil, fmt.Errorf("Parameters: %w", err)
		}
	}
	params := parameterDefaults(declared)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(overrides)) {
		if err := checkParameter(declared, name, overrides[name]); err != nil {
			errs = append(errs, err)
			continue
		}
		params[name] = overrides[name]
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	names := map[string]bool{}
	for name := range declared {
		names[name] = true
	}
	if err := applyConditions(tree, names, params); err != nil {
		return nil, err
	}
	evaluated, err := json.Marshal(tree)
	if err != nil {
		return nil, err
	}
	// ProcessJSON, unlike ProcessYAML, touches no shared state.
	processed, err := intrinsics.ProcessJSON(evaluated, &intrinsics.ProcessorOptions{
		IntrinsicHandlerOverrides: map[string]intrinsics.IntrinsicHandler{
			"Ref":        renderRef,
			"Fn::GetAtt": renderGetAtt,
			"Fn::Sub":    renderSub,
		},
	})
	if err != nil {
		return nil, err
	}
	var raw map[string]any
	if err := json.Unmarshal(processed, &raw); err != nil {
		return nil, fmt.Errorf("template is not a mapping: %w", err)
	}
	// goformation types environment variables as map[string]string, so an
	// unquoted number or boolean in YAML would fail the whole parse.
	// CloudFormation accepts them as strings: do the same.
	stringifyEnvironment(raw)
	var a aside
	setAsideRenderedNumbers(raw, &a)
	setAsideUntyped(raw, &a)
	normalised, err := json.Marshal(raw)
	a.restore()
	if err != nil {
		return nil, err
	}
	// This is what goformation.ParseYAMLWithOptions does after processing the
	// intrinsics; done here so that the processed tree is kept as well.
	cfn := &cloudformation.Template{}
	if err := json.Unmarshal(normalised, cfn); err != nil {
		return nil, err
	}
	return &Template{CFN: cfn, Dir: dir, raw: raw, params: params}, nil
}

func renderRef(_ string, input, _ any) any {
	name, ok := input.(string)
	if !ok || name == "AWS::NoValue" {
		return nil
	}
	return RefPrefix + name
}

func renderGetAtt(_ string, input, _ any) any {
	switch v := input.(type) {
	case string: // !GetAtt X.Attr
		return GetAttPrefix + v
	case []any: // Fn::GetAtt: [X, Attr]
		if len(v) == 2 {
			res, ok1 := v[0].(string)
			attr, ok2 := v[1].(string)
			if ok1 && ok2 {
				return GetAttPrefix + res + "." + attr
			}
		}
	}
	return nil
}

// subVar matches a ${name} of an Fn::Sub template; ${!literal} is an escape.
var subVar = regexp.MustCompile(`\$\{([^!}][^}]*)\}`)

func renderSub(_ string, input, _ any) any {
	switch v := input.(type) {
	case string:
		return v
	case []any:
		if len(v) != 2 {
			return nil
		}
		tmpl, ok := v[0].(string)
		vars, ok2 := v[1].(map[string]any)
		if !ok || !ok2 {
			return nil
		}
		return subVar.ReplaceAllStringFunc(tmpl, func(m string) string {
			s, ok := vars[m[2:len(m)-1]].(string)
			switch {
			case !ok:
				return m // a name of the template, or a value we cannot render
			case strings.HasPrefix(s, RefPrefix):
				return "${" + strings.TrimPrefix(s, RefPrefix) + "}"
			case strings.HasPrefix(s, GetAttPrefix):
				return "${" + strings.TrimPrefix(s, GetAttPrefix) + "}"
			default:
				return strings.ReplaceAll(s, "${", "${!")
			}
		})
	}
	return nil
}

// untypedResources are the resource types that the typed template
// (Template.CFN) leaves out: nothing in the emulator reads them, and
// goformation types their numbers as numbers (RetentionInDays, Threshold),
// so a Ref to a parameter, rendered "ref:X", would refuse the whole
// template. The raw tree keeps them, for the template's checks.
var untypedResources = map[string]bool{
	"AWS::Logs::LogGroup":        true,
	"AWS::CloudWatch::Alarm":     true,
	"AWS::CloudWatch::Dashboard": true,
	"AWS::ApiGateway::Account":   true,
	"AWS::IAM::Role":             true,
}

// untypedFunctionProperties are the properties of AWS::Serverless::Function
// (and of Globals.Function) that goformation's type does not know and would
// refuse the whole template for.
var untypedFunctionProperties = []string{"LoggingConfig"}

// aside is what was taken out of the raw tree for the typed template, to
// be put back once it is parsed: the raw tree keeps everything.
type aside []taken

// taken is m[key], taken out.
type taken struct {
	m     map[string]any
	key   string
	value any
}

// take removes m[key], when it is there, and records it.
func (a *aside) take(m map[string]any, key string) {
	if v, ok := m[key]; ok {
		*a = append(*a, taken{m, key, v})
		delete(m, key)
	}
}

// restore puts back what was taken.
func (a aside) restore() {
	for _, e := range a {
		e.m[e.key] = e.value
	}
}

// setAsideUntyped takes out of raw the resources of untypedResources and the
// function properties of untypedFunctionProperties.
func setAsideUntyped(raw map[string]any, a *aside) {
	res, _ := raw["Resources"].(map[string]any)
	for id, r := range res {
		m, _ := r.(map[string]any)
		if typ, _ := m["Type"].(string); untypedResources[typ] {
			a.take(res, id)
		}
	}
	props := []map[string]any{}
	if g, ok := raw["Globals"].(map[string]any); ok {
		if f, ok := g["Function"].(map[string]any); ok {
			props = append(props, f)
		}
	}
	for _, r := range res {
		m, _ := r.(map[string]any)
		if m["Type"] != "AWS::Serverless::Function" {
			continue
		}
		if p, ok := m["Properties"].(map[string]any); ok {
			props = append(props, p)
		}
	}
	for _, p := range props {
		for _, k := range untypedFunctionProperties {
			a.take(p, k)
		}
	}
}

// setAsideRenderedNumbers takes out of raw the stage route settings whose
// numbers are rendered intrinsics ("ref:X"), which goformation types as
// numbers and would refuse the whole template for (ThrottlingRateLimit,
// ThrottlingBurstLimit): the typed template goes without them, the raw
// tree keeps them (see StageThrottling).
func setAsideRenderedNumbers(raw map[string]any, a *aside) {
	res, _ := raw["Resources"].(map[string]any)
	for _, r := range res {
		m, _ := r.(map[string]any)
		if m["Type"] != "AWS::ApiGatewayV2::Stage" {
			continue
		}
		props, _ := m["Properties"].(map[string]any)
		settings := []any{props["DefaultRouteSettings"]}
		if rs, ok := props["RouteSettings"].(map[string]any); ok {
			for _, v := range rs {
				settings = append(settings, v)
			}
		}
		for _, v := range settings {
			rs, _ := v.(map[string]any)
			for _, k := range []string{"ThrottlingRateLimit", "ThrottlingBurstLimit"} {
				if _, isString := rs[k].(string); isString {
					a.take(rs, k)
				}
			}
		}
	}
}

// StageThrottling returns the DefaultRouteSettings throttling values of the
// stage with logical id stage, as written (a number as its decimal text, an
// intrinsic rendered as described in the package documentation), "" for a
// value that is not set.
func (t *Template) StageThrottling(stage string) (rate, burst string) {
	res, _ := t.raw["Resources"].(map[string]any)
	m, _ := res[stage].(map[string]any)
	props, _ := m["Properties"].(map[string]any)
	rs, _ := props["DefaultRouteSettings"].(map[string]any)
	text := func(v any) string {
		switch x := v.(type) {
		case string:
			return x
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return ""
	}
	return text(rs["ThrottlingRateLimit"]), text(rs["ThrottlingBurstLimit"])
}

func stringifyEnvironment(raw map[string]any) {
	fix := func(props any) {
		p, _ := props.(map[string]any)
		env, _ := p["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		for k, v := range vars {
			switch x := v.(type) {
			case float64:
				vars[k] = strconv.FormatFloat(x, 'f', -1, 64)
			case bool:
				vars[k] = strconv.FormatBool(x)
			}
		}
	}
	if g, ok := raw["Globals"].(map[string]any); ok {
		fix(g["Function"])
	}
	res, _ := raw["Resources"].(map[string]any)
	for _, r := range res {
		if m, ok := r.(map[string]any); ok {
			fix(m["Properties"])
		}
	}
}

// Expand renders a value as Load leaves it ("ref:X", "getatt:X.Attr", or a
// string whose ${name} are Fn::Sub variables) into its concrete value.
// lookup gives the value of a name: a parameter, a resource's logical id, a
// pseudo parameter such as "AWS::Region", or "X.Attr" for an attribute.
// ${!literal} becomes ${literal}, as in Fn::Sub.
//
// A plain string is returned as is unless it contains ${...}: a string
// written literally with ${...} outside Fn::Sub cannot be told apart.
func Expand(value string, lookup func(name string) (string, bool)) (string, error) {
	for _, p := range []string{RefPrefix, GetAttPrefix} {
		if name, ok := strings.CutPrefix(value, p); ok {
			v, ok := lookup(name)
			if !ok {
				return "", fmt.Errorf("no value for %s", name)
			}
			return v, nil
		}
	}
	var missing []string
	out := subVar.ReplaceAllStringFunc(value, func(m string) string {
		name := m[2 : len(m)-1]
		v, ok := lookup(name)
		if !ok {
			missing = append(missing, name)
			return m
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no value for %s in %q", strings.Join(missing, ", "), value)
	}
	return strings.ReplaceAll(out, "${!", "${"), nil
}

// ParameterDefaults returns the default value of each parameter that has
// one, as CloudFormation passes it to Ref: a string (numbers in decimal).
func (t *Template) ParameterDefaults() map[string]string {
	return parameterDefaults(t.CFN.Parameters)
}

// ParameterValues returns the parameter values the template's conditions
// were evaluated with: the defaults, overridden by the overrides given to
// LoadWithParameters or ParseWithParameters. A parameter with no default
// and no override is absent.
func (t *Template) ParameterValues() map[string]string {
	return maps.Clone(t.params)
}

func parameterDefaults(params cloudformation.Parameters) map[string]string {
	out := map[string]string{}
	for name, p := range params {
		switch v := p.Default.(type) {
		case nil:
		case string:
			out[name] = v
		case float64:
			out[name] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[name] = strconv.FormatBool(v)
		case []any:
			parts := make([]string, len(v))
			for i, e := range v {
				parts[i] = fmt.Sprint(e)
			}
			out[name] = strings.Join(parts, ",")
		default:
			out[name] = fmt.Sprint(v)
		}
	}
	return out
}

// WebSocketAPI returns the logical id of the template's one
// AWS::ApiGatewayV2::Api whose ProtocolType is WEBSOCKET.
func (t *Template) WebSocketAPI() (string, error) {
	var ids []string
	for id, api := range t.CFN.GetAllApiGatewayV2ApiResources() {
		if api.ProtocolType != nil && *api.ProtocolType == "WEBSOCKET" {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if len(ids) != 1 {
		return "", fmt.Errorf("got %d WebSocket APIs %v, want 1", len(ids), ids)
	}
	return ids[0], nil
}

// RouteSelectionExpression returns the RouteSelectionExpression of the
// WebSocket API, or "" if there is no single WebSocket API.
func (t *Template) RouteSelectionExpression() string {
	id, err := t.WebSocketAPI()
	if err != nil {
		return ""
	}
	if e := t.CFN.GetAllApiGatewayV2ApiResources()[id].RouteSelectionExpression; e != nil {
		return *e
	}
	return ""
}

// Route is a route of the WebSocket API, followed to the function it invokes.
type Route struct {
	// Key is the route key: "$connect", "$disconnect", "$default" or a
	// value of the route selection expression.
	Key string
	// Function is the logical id of the function the route's integration
	// invokes.
	Function string
	// HasRouteResponse reports whether the route has a route response
	// (RouteResponseSelectionExpression and an AWS::ApiGatewayV2::RouteResponse),
	// that is whether the function's response body is sent to the client.
	HasRouteResponse bool

	LogicalID       string // of the AWS::ApiGatewayV2::Route
	Integration     string // logical id of its AWS::ApiGatewayV2::Integration
	IntegrationType string // AWS_PROXY for a Lambda proxy integration

	// Authorizer is the route's Lambda authorizer when its
	// AuthorizationType is CUSTOM, nil when it is NONE or absent. It is nil
	// for AWS_IAM too: the local gateway does not check request signatures.
	Authorizer *Authorizer
}

// Authorizer is an AWS::ApiGatewayV2::Authorizer of the WebSocket API, followed to its function.
type Authorizer struct {
	LogicalID string
	// Type is REQUEST (the only type WebSocket APIs have).
	Type string
	// Function is the logical id of the Lambda function it invokes.
	Function string
	// IdentitySources as written: route.request.header.NAME, route.request.querystring.NAME, stageVariables.NAME, context.NAME.
	IdentitySources []string
}

var (
	// Target: !Sub "integrations/${X}", or Fn::Join of "integrations" and Ref X.
	targetRE = regexp.MustCompile(`^integrations/(?:\$\{([A-Za-z0-9]+)\}|ref:([A-Za-z0-9]+))$`)
	// IntegrationUri: arn:...:lambda:path/2015-03-31/functions/${X.Arn}/invocations
	// (getatt:X.Arn in place of ${X.Arn} when built with Fn::Join), or a
	// plain Fn::GetAtt X.Arn.
	invocationRE = regexp.MustCompile(`^(?:arn:.*:lambda:path/2015-03-31/functions/(?:\$\{([A-Za-z0-9]+)\.Arn\}|getatt:([A-Za-z0-9]+)\.Arn)/invocations|getatt:([A-Za-z0-9]+)\.Arn)$`)
	// An authorizer's IdentitySource entry on a WebSocket API.
	identitySourceRE = regexp.MustCompile(`^(?:route\.request\.header|route\.request\.querystring|stageVariables|context)\.\S+$`)
)

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// Routes returns the routes of the WebSocket API sorted by key, each followed
// from its Target ("integrations/X") to integration X and from X's
// IntegrationUri to the function it invokes, and from a CUSTOM route's
// AuthorizerId to its authorizer and the function that one invokes. It
// fails if a route, its integration or its authorizer cannot be followed or
// belongs to another API, if a route has only half a route response, or if
// a route has an authorizer API Gateway would refuse (on a route other than
// $connect, or not of type REQUEST).
func (t *Template) Routes() ([]Route, error) {
	api, err := t.WebSocketAPI()
	if err != nil {
		return nil, err
	}
	apiRef := RefPrefix + api
	integrations := t.CFN.GetAllApiGatewayV2IntegrationResources()
	responses := map[string][]string{} // route logical id → its route responses
	for id, rr := range t.CFN.GetAllApiGatewayV2RouteResponseResources() {
		route, ok := strings.CutPrefix(rr.RouteId, RefPrefix)
		if !ok {
			return nil, fmt.Errorf("route response %s: RouteId %q is not a Ref to a route", id, rr.RouteId)
		}
		responses[route] = append(responses[route], id)
	}
	functions := t.functionIDs()

	var routes []Route
	for id, r := range t.CFN.GetAllApiGatewayV2RouteResources() {
		if r.ApiId != apiRef {
			return nil, fmt.Errorf("route %s (%s): ApiId %q, want %q", id, r.RouteKey, r.ApiId, apiRef)
		}
		if r.Target == nil {
			return nil, fmt.Errorf("route %s (%s): no Target", id, r.RouteKey)
		}
		m := targetRE.FindStringSubmatch(*r.Target)
		if m == nil {
			return nil, fmt.Errorf("route %s (%s): Target %q, want integrations/${Integration}", id, r.RouteKey, *r.Target)
		}
		integID := firstNonEmpty(m[1], m[2])
		integ, ok := integrations[integID]
		if !ok {
			return nil, fmt.Errorf("route %s (%s): Target names %s, which is not an AWS::ApiGatewayV2::Integration", id, r.RouteKey, integID)
		}
		if integ.ApiId != apiRef {
			return nil, fmt.Errorf("integration %s: ApiId %q, want %q", integID, integ.ApiId, apiRef)
		}
		uri := ""
		if integ.IntegrationUri != nil {
			uri = *integ.IntegrationUri
		}
		m = invocationRE.FindStringSubmatch(uri)
		if m == nil {
			return nil, fmt.Errorf("integration %s: IntegrationUri %q does not invoke a Lambda function of the template", integID, uri)
		}
		fn := firstNonEmpty(m[1], m[2], m[3])
		if !functions[fn] {
			return nil, fmt.Errorf("integration %s: IntegrationUri invokes %s, which is not a function of the template", integID, fn)
		}
		auth, err := t.routeAuthorizer(id, r, apiRef, functions)
		if err != nil {
			return nil, err
		}
		hasExpr := r.RouteResponseSelectionExpression != nil && *r.RouteResponseSelectionExpression != ""
		rrs := responses[id]
		if hasExpr != (len(rrs) > 0) {
			return nil, fmt.Errorf("route %s (%s): RouteResponseSelectionExpression set %v but %d route responses: API Gateway sends a response only with both",
				id, r.RouteKey, hasExpr, len(rrs))
		}
		routes = append(routes, Route{
			Key:              r.RouteKey,
			Function:         fn,
			HasRouteResponse: hasExpr,
			LogicalID:        id,
			Integration:      integID,
			IntegrationType:  integ.IntegrationType,
			Authorizer:       auth,
		})
	}
	sort.Slice(routes, func(i, j int) bool { return routes[i].Key < routes[j].Key })
	for i := 1; i < len(routes); i++ {
		if routes[i].Key == routes[i-1].Key {
			return nil, fmt.Errorf("routes %s and %s share the key %s", routes[i-1].LogicalID, routes[i].LogicalID, routes[i].Key)
		}
	}
	return routes, nil
}

// routeAuthorizer returns the authorizer of route id (r), nil if it has
// none; apiRef is the WebSocket API as a rendered Ref, functions the
// template's functions.
func (t *Template) routeAuthorizer(id string, r *apigatewayv2.Route, apiRef string, functions map[string]bool) (*Authorizer, error) {
	typ := str(r.AuthorizationType)
	switch typ {
	case "", "NONE", "AWS_IAM":
		if r.AuthorizerId != nil {
			return nil, fmt.Errorf("route %s (%s): AuthorizerId %q with AuthorizationType %q: an authorizer is used only with CUSTOM", id, r.RouteKey, *r.AuthorizerId, typ)
		}
		return nil, nil
	case "CUSTOM":
	default:
		return nil, fmt.Errorf("route %s (%s): AuthorizationType %q, want NONE, AWS_IAM or CUSTOM", id, r.RouteKey, typ)
	}
	if r.RouteKey != "$connect" {
		return nil, fmt.Errorf("route %s (%s): AuthorizationType CUSTOM: a WebSocket API allows an authorizer only on $connect", id, r.RouteKey)
	}
	authID, ok := strings.CutPrefix(str(r.AuthorizerId), RefPrefix)
	if !ok {
		return nil, fmt.Errorf("route %s (%s): AuthorizationType CUSTOM with AuthorizerId %q, want a Ref to an AWS::ApiGatewayV2::Authorizer", id, r.RouteKey, str(r.AuthorizerId))
	}
	a, ok := t.CFN.GetAllApiGatewayV2AuthorizerResources()[authID]
	if !ok {
		return nil, fmt.Errorf("route %s (%s): AuthorizerId names %s, which is not an AWS::ApiGatewayV2::Authorizer", id, r.RouteKey, authID)
	}
	if a.ApiId != apiRef {
		return nil, fmt.Errorf("authorizer %s: ApiId %q, want %q", authID, a.ApiId, apiRef)
	}
	if a.AuthorizerType != "REQUEST" {
		return nil, fmt.Errorf("authorizer %s: AuthorizerType %q, want REQUEST (the only type a WebSocket API has; JWT is for HTTP APIs)", authID, a.AuthorizerType)
	}
	uri := str(a.AuthorizerUri)
	m := invocationRE.FindStringSubmatch(uri)
	if m == nil {
		return nil, fmt.Errorf("authorizer %s: AuthorizerUri %q does not invoke a Lambda function of the template", authID, uri)
	}
	fn := firstNonEmpty(m[1], m[2], m[3])
	if !functions[fn] {
		return nil, fmt.Errorf("authorizer %s: AuthorizerUri invokes %s, which is not a function of the template", authID, fn)
	}
	for _, src := range a.IdentitySource {
		if !identitySourceRE.MatchString(src) {
			return nil, fmt.Errorf("authorizer %s: IdentitySource %q, want route.request.header.NAME, route.request.querystring.NAME, stageVariables.NAME or context.NAME", authID, src)
		}
	}
	return &Authorizer{
		LogicalID:       authID,
		Type:            a.AuthorizerType,
		Function:        fn,
		IdentitySources: a.IdentitySource,
	}, nil
}

// functionIDs returns the logical ids of the template's Lambda functions,
// SAM or plain.
func (t *Template) functionIDs() map[string]bool {
	ids := map[string]bool{}
	for id := range t.CFN.GetAllServerlessFunctionResources() {
		ids[id] = true
	}
	for id := range t.CFN.GetAllLambdaFunctionResources() {
		ids[id] = true
	}
	return ids
}

// CheckParameter reports whether value is a valid value of the parameter
// name, as CloudFormation checks a parameter override: the parameter
// exists, and value meets its AllowedValues, AllowedPattern, MinValue and
// MaxValue (numbers) and MinLength and MaxLength (strings).
func (t *Template) CheckParameter(name, value string) error {
	return checkParameter(t.CFN.Parameters, name, value)
}

func checkParameter(params cloudformation.Parameters, name, value string) error {
	p, ok := params[name]
	if !ok {
		names := make([]string, 0, len(params))
		for n := range params {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("parameter %s: the template has no such parameter (it has %s)", name, strings.Join(names, ", "))
	}
	if len(p.AllowedValues) > 0 {
		allowed := false
		for _, v := range p.AllowedValues {
			allowed = allowed || fmt.Sprint(v) == value
		}
		if !allowed {
			return fmt.Errorf("parameter %s=%q: want one of %v", name, value, p.AllowedValues)
		}
	}
	if p.AllowedPattern != nil {
		re, err := regexp.Compile("^(?:" + *p.AllowedPattern + ")$")
		if err == nil && !re.MatchString(value) {
			return fmt.Errorf("parameter %s=%q: does not match %s", name, value, *p.AllowedPattern)
		}
	}
	if p.Type == "Number" {
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return fmt.Errorf("parameter %s=%q: want a number", name, value)
		}
		if p.MinValue != nil && n < *p.MinValue || p.MaxValue != nil && n > *p.MaxValue {
			return fmt.Errorf("parameter %s=%s: want %v to %v", name, value, derefOr(p.MinValue, "-inf"), derefOr(p.MaxValue, "+inf"))
		}
	}
	if p.MinLength != nil && len(value) < *p.MinLength || p.MaxLength != nil && len(value) > *p.MaxLength {
		return fmt.Errorf("parameter %s=%q: length %d out of range", name, value, len(value))
	}
	return nil
}

func derefOr(p *float64, none string) string {
	if p == nil {
		return none
	}
	return strconv.FormatFloat(*p, 'f', -1, 64)
}
