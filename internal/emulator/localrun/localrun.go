// Package localrun runs mastersocket on a laptop: the routes and functions of
// template.yaml on the local API Gateway emulator (internal/emulator/gateway),
// the functions either in this process or as built bootstrap binaries, on the
// embedded in-memory store or on DynamoDB (Local, LocalStack or AWS). It is
// what cmd/localgw runs and what the end-to-end tests start.
package localrun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/mastersocket/mastersocket/internal/asyncinvoke"
	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/emulator/gateway"
	"github.com/mastersocket/mastersocket/internal/emulator/inspector"
	"github.com/mastersocket/mastersocket/internal/emulator/lambdaapi"
	"github.com/mastersocket/mastersocket/internal/emulator/lambdart"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
	"github.com/mastersocket/mastersocket/internal/handler"
	"github.com/mastersocket/mastersocket/internal/memstore"
	"github.com/mastersocket/mastersocket/internal/mgmtapi"
	"github.com/mastersocket/mastersocket/internal/router"
	"github.com/mastersocket/mastersocket/internal/token"
)

// Store and function modes.
const (
	StoreMemory   = "memory"
	StoreDynamoDB = "dynamodb"

	FunctionsInProcess = "inprocess"
	FunctionsBinaries  = "binaries"
)

// Local values of the template's pseudo parameters and ids.
const (
	localAPIID   = "local"
	localRegion  = "us-east-1"
	localAccount = "000000000000"
)

// Options are the settings of a local run; zero fields mean the defaults
// that cmd/localgw documents.
type Options struct {
	// Addr to listen on; default 127.0.0.1:3001 (use 127.0.0.1:0 in tests).
	Addr string
	// Stage; default dev.
	Stage string
	// Template is the SAM template to run; default template.yaml.
	Template string
	// Parameters override the template's parameter defaults, as `sam
	// deploy --parameter-overrides` does; each is checked against the
	// parameter's constraints.
	Parameters map[string]string
	// Environment sets variables on every function, over what the template
	// gives them, as `sam local invoke --env-vars` does (tests shorten the
	// sweeper's SWEEP_HANDSHAKE_GRACE_MS with it).
	Environment map[string]string
	// Token is accepted for all groups; empty: a new one is generated. It
	// is stored with an expiry that the running gateway keeps pushing back
	// (TokenLease), and removed when the gateway stops, so that no run
	// leaves a working credential behind.
	Token string
	// TokenLease is how long the token stays valid without renewal: what a
	// killed gateway leaves behind. Default 1 hour.
	TokenLease time.Duration
	// Store is memory (default) or dynamodb.
	Store string
	// DynamoDBEndpoint and Table locate the DynamoDB table of the dynamodb
	// store; the table is created when missing (never on AWS). Default
	// table: mastersocket.
	DynamoDBEndpoint string
	Table            string
	// AllowAWS lets the dynamodb store without an endpoint use real AWS
	// (default credentials and region), on an existing table only.
	// Without it, such a run is refused.
	AllowAWS bool
	// Functions is inprocess (default) or binaries.
	Functions string
	// BuildDir is where binaries mode builds: each run makes a folder of
	// its own in it and removes it on Close. Default: the user's cache
	// folder, mastersocket/localgw.
	BuildDir string
	// SweepEvery overrides the template's schedules (the sweeper's
	// rate(1 minute)): scheduled functions run this often. Zero keeps the
	// template's schedule; a negative value runs none.
	SweepEvery time.Duration
	// Gateway overrides the gateway's limits (idle timeout, lifetime,
	// frame and message sizes, integration timeout, send queue).
	Gateway gateway.Config
	// AsyncRetryDelays replace Lambda's waits before the retries of a
	// failed asynchronous invocation (one minute, then two); tests shorten
	// them.
	AsyncRetryDelays []time.Duration
	// Verbose logs bodies and every management API call.
	Verbose bool
	// Inspector serves the inspector page at http://ADDR/ (package
	// inspector): live connections, groups, messages and errors, and a
	// form to send frames. Default false: "/" is refused as any path
	// outside the stage (cmd/localgw turns it on unless --inspector=false).
	Inspector bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// Fault injection, for tests of what the functions survive:
	// DynamoDBHTTPClient carries the DynamoDB store's calls (the dynamodb
	// store only); ManagementTransport wraps the transport of in-process
	// functions' @connections calls; WrapStore wraps the store that
	// in-process functions use.
	DynamoDBHTTPClient  aws.HTTPClient
	ManagementTransport func(http.RoundTripper) http.RoundTripper
	WrapStore           func(handler.Store) handler.Store
}

// Server is a running local deployment.
type Server struct {
	*gateway.Gateway
	// Token is the token accepted for all groups.
	Token string
	// Summary describes the run for a person: URLs, token, store.
	Summary string

	store     Registry
	log       *slog.Logger
	invokers  functionSet
	schedules []schedule
	buildDir  string // this run's own build folder, removed on Close

	lambda    *lambdaapi.API
	inspector *inspector.Inspector // nil when off
	lease     tokenLease
	pools     []*lambdart.Pool
	stop      context.CancelFunc // stops the lease and the schedules
	bg        sync.WaitGroup
	closeOnce sync.Once
}

// Registry is the store of a local run: what the functions use, and the
// token administration the local gateway needs.
type Registry interface {
	handler.Store
	PutToken(ctx context.Context, t token.Token) error
	Token(ctx context.Context, h token.Hash) (token.Token, error)
	ExtendToken(ctx context.Context, h token.Hash, expiresAt time.Time) error
	DeleteToken(ctx context.Context, h token.Hash) error
}

var (
	_ Registry = (*memstore.Store)(nil)
	_ Registry = (*dynamostore.Store)(nil)
)

// Store returns the run's store (tests count its items).
func (s *Server) Store() Registry { return s.store }

// Lambda returns the run's Lambda Invoke API, which the functions' SDK
// clients reach on the gateway's port (tests read its counters and its
// on-failure destination).
func (s *Server) Lambda() *lambdaapi.API { return s.lambda }

// Start loads the template, prepares the store and the functions, and
// starts listening. Serve with Run; stop with Close or by cancelling Run's
// context.
func Start(ctx context.Context, o Options) (*Server, error) {
	if err := o.setDefaults(); err != nil {
		return nil, err
	}
	tmpl, err := template.LoadWithParameters(o.Template, o.Parameters)
	if err != nil {
		return nil, err
	}
	params := tmpl.ParameterValues()
	tmplRoutes, err := tmpl.Routes()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	bgCtx, stop := context.WithCancel(context.Background())
	s := &Server{log: o.Logger, invokers: functionSet{}, stop: stop}
	ok := false
	defer func() {
		if !ok {
			if s.Gateway != nil {
				s.Gateway.Close()
			} else {
				ln.Close()
			}
			s.shutdown()
		}
	}()
	addr := ln.Addr().String()

	store, storeDesc, err := o.openStore(ctx)
	if err != nil {
		return nil, err
	}
	s.store = store
	s.Token = o.Token
	if s.Token == "" {
		if s.Token, _, err = token.Generate(); err != nil {
			return nil, err
		}
	}
	if s.lease, err = startLease(ctx, store, s.Token, o.TokenLease, o.Logger); err != nil {
		return nil, err
	}

	// The gateway first, so that in-process functions can reach its
	// management API in memory; the functions are filled in before Run.
	var routes []gateway.Route
	var connectAuth *template.Authorizer
	for _, r := range tmplRoutes {
		route := gateway.Route{Key: r.Key, Function: r.Function, RouteResponse: r.HasRouteResponse}
		if a := r.Authorizer; a != nil {
			route.Authorizer = &gateway.Authorizer{Name: a.LogicalID, Function: a.Function, IdentitySources: a.IdentitySources}
			if r.Key == "$connect" {
				connectAuth = a
			}
		}
		routes = append(routes, route)
	}
	// Lambda's Invoke API on the same port: a function invokes another one
	// (the message function its fan-out batches) as on AWS.
	env := envResolver{tmpl: tmpl, params: params, stage: o.Stage, addr: addr, table: o.tableName()}
	if s.lambda, err = newLambdaAPI(tmpl, env, s.invokers, o); err != nil {
		return nil, err
	}
	gc := o.Gateway
	gc.APIs = map[string]http.Handler{lambdaapi.PathPrefix: s.lambda}
	gc.Listener, gc.Stage, gc.APIID, gc.Region, gc.AccountID = ln, o.Stage, localAPIID, localRegion, localAccount
	gc.RouteSelectionExpression = tmpl.RouteSelectionExpression()
	gc.Routes, gc.Invoker, gc.Logger, gc.Verbose = routes, s.invokers, o.Logger, o.Verbose
	if gc.Redact == nil {
		gc.Redact = redactTokens
	}
	if o.Inspector {
		// The page at "/" and its assets, stream and form under its prefix,
		// watching the gateway through its observer hook.
		s.inspector = inspector.New(inspector.Config{Redact: gc.Redact})
		gc.Observer = teeObserver(gc.Observer, s.inspector)
		gc.Home = s.inspector.Handler()
		gc.APIs[inspector.PathPrefix] = gc.Home
	}
	gw, err := gateway.New(gc)
	if err != nil {
		return nil, err
	}
	s.Gateway = gw
	if s.inspector != nil {
		s.inspector.Attach(gw)
	}

	schedules, err := schedulesOf(tmpl, env, o.SweepEvery, o.Logger)
	if err != nil {
		return nil, err
	}
	needed := map[string]string{} // function → why it runs (a route, its authorizer, a schedule)
	for _, r := range tmplRoutes {
		needed[r.Function] = "route " + r.Key
		if r.Authorizer != nil {
			needed[r.Authorizer.Function] = "authorizer " + r.Authorizer.LogicalID + " of route " + r.Key
		}
	}
	for _, sc := range schedules {
		if _, ok := needed[sc.function]; !ok {
			needed[sc.function] = "schedule " + sc.event
		}
	}
	functions := tmpl.Functions()
	for id, fn := range functions {
		if _, ok := needed[id]; !ok && fn.CodeURI != "" {
			needed[id] = "the Lambda Invoke API" // another function may invoke it (FanOutFunction)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(needed)) {
		fn, ok := functions[name]
		if !ok {
			return nil, fmt.Errorf("%s: no function %s in %s", needed[name], name, o.Template)
		}
		vars, err := env.environment(fn)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", fn.LogicalID, err)
		}
		maps.Copy(vars, o.Environment)
		if o.Verbose {
			o.Logger.Debug("FUNCTION", "function", fn.LogicalID, "code", fn.CodeURI, "env", describe(vars))
		}
		inv, err := s.invoker(ctx, o, tmpl, fn, vars, store)
		if err != nil {
			return nil, fmt.Errorf("function %s: %w", fn.LogicalID, err)
		}
		s.invokers[name] = inv
	}
	s.schedules = schedules
	s.lease.renew(bgCtx, &s.bg)
	for _, sc := range schedules {
		s.bg.Add(1)
		go s.runSchedule(bgCtx, sc)
	}

	var sched strings.Builder
	for _, sc := range schedules {
		if sc.every > 0 {
			fmt.Fprintf(&sched, "  schedule       %s every %v (%s)\n", sc.function, sc.every, sc.source)
		} else {
			fmt.Fprintf(&sched, "  schedule       %s not run on its own (%s)\n", sc.function, sc.source)
		}
	}
	auth := "off (IDENTIFY with the token after connecting)"
	if connectAuth != nil {
		auth = "required: the handshake carries the token (" + connectAuth.LogicalID + " runs on $connect)"
	}
	inspectorLine := ""
	if s.inspector != nil {
		inspectorLine = "  Inspector      " + s.InspectorURL() + "\n"
	}
	s.Summary = fmt.Sprintf(`mastersocket local gateway: %s, %d routes, functions %s, store %s
  WebSocket      %s
  @connections   %s/@connections/{connectionId}
%s  token          %s  (all groups)
  connect auth   %s
%s
%s`, o.Template, len(routes), o.Functions, storeDesc, gw.URL(), gw.ManagementEndpoint(), inspectorLine, s.Token, auth, sched.String(),
		howToConnect(gw.URL(), s.Token, connectAuth != nil))
	ok = true
	return s, nil
}

// InspectorURL returns the address of the inspector page,
// http://ADDR/, or "" when the run has no inspector (Options.Inspector).
func (s *Server) InspectorURL() string {
	if s.inspector == nil {
		return ""
	}
	return "http://" + s.Gateway.Addr() + "/"
}

// teeObserver returns an observer that tells first, when there is one, and
// then second.
func teeObserver(first gateway.Observer, second gateway.Observer) gateway.Observer {
	if first == nil {
		return second
	}
	return observers{first, second}
}

type observers []gateway.Observer

func (obs observers) Observe(o gateway.Observation) {
	for _, ob := range obs {
		ob.Observe(o)
	}
}

// Close stops the gateway (closing every connection and running their
// $disconnect), the schedules and the function processes, removes the
// token it stored and its build folder. It is idempotent.
func (s *Server) Close() error {
	err := s.Gateway.Close()
	s.shutdown()
	return err
}

// Run serves until ctx is done, then stops everything as Close does.
func (s *Server) Run(ctx context.Context) error {
	err := s.Gateway.Run(ctx)
	s.shutdown()
	return err
}

// shutdown stops what Start started beside the gateway, once.
func (s *Server) shutdown() {
	s.closeOnce.Do(func() {
		s.stop()
		s.bg.Wait()
		if s.lambda != nil {
			s.lambda.Close()
		}
		for _, p := range s.pools {
			p.Close()
		}
		s.lease.release()
		if s.buildDir != "" {
			if err := os.RemoveAll(s.buildDir); err != nil {
				s.log.Warn("could not remove the build folder", "path", s.buildDir, "err", err)
			}
		}
	})
}

func (o *Options) setDefaults() error {
	if o.Addr == "" {
		o.Addr = gateway.DefaultAddr
	}
	if o.Stage == "" {
		o.Stage = gateway.DefaultStage
	}
	if o.Template == "" {
		o.Template = "template.yaml"
	}
	if o.Store == "" {
		o.Store = StoreMemory
	}
	if o.Functions == "" {
		o.Functions = FunctionsInProcess
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch o.Store {
	case StoreMemory, StoreDynamoDB:
	default:
		return fmt.Errorf("--store %q: want memory or dynamodb", o.Store)
	}
	switch o.Functions {
	case FunctionsInProcess:
	case FunctionsBinaries:
		if o.Store == StoreMemory {
			return errors.New("--functions binaries runs each function in processes of its own, which cannot share the in-memory store: add --store dynamodb")
		}
	default:
		return fmt.Errorf("--functions %q: want inprocess or binaries", o.Functions)
	}
	if o.BuildDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		o.BuildDir = filepath.Join(dir, "mastersocket", "localgw")
	}
	if o.TokenLease == 0 {
		o.TokenLease = DefaultTokenLease
	} else if o.TokenLease < 0 {
		return fmt.Errorf("token lease %v: want a positive duration", o.TokenLease)
	}
	if o.Store == StoreDynamoDB && o.DynamoDBEndpoint == "" && !o.AllowAWS {
		return errors.New("--store dynamodb without --dynamodb-endpoint would use real AWS with your default credentials and region: " +
			"pass --dynamodb-endpoint http://127.0.0.1:8000 for DynamoDB Local (make dynamodb-local), or add --allow-aws to use a deployed stack's table on purpose")
	}
	return nil
}

func (o *Options) tableName() string {
	if o.Table == "" {
		return "mastersocket"
	}
	return o.Table
}

// openStore returns the store and a description of where its data lives.
func (o *Options) openStore(ctx context.Context) (Registry, string, error) {
	if o.Store == StoreMemory {
		return memstore.New(), "memory (embedded; data lives in this process and is gone when it stops)", nil
	}
	client, err := dynamostore.NewClient(ctx, o.DynamoDBEndpoint, dynamostore.ClientConfig{HTTPClient: o.DynamoDBHTTPClient})
	if err != nil {
		return nil, "", err
	}
	var where, state string
	if o.DynamoDBEndpoint == "" {
		// Real AWS: use the deployed table as it is, never create or alter one.
		if err := dynamostore.CheckTable(ctx, client, o.tableName()); err != nil {
			return nil, "", err
		}
		where, state = "AWS (default credentials and region)", "existing"
	} else {
		created, err := dynamostore.EnsureTable(ctx, client, o.tableName())
		if err != nil {
			return nil, "", err
		}
		where, state = o.DynamoDBEndpoint, "existing"
		if created {
			state = "created"
		}
	}
	st, err := dynamostore.New(client, dynamostore.Config{Table: o.tableName()})
	if err != nil {
		return nil, "", err
	}
	return st, fmt.Sprintf("dynamodb: table %s (%s) at %s", o.tableName(), state, where), nil
}

// functionSet dispatches each function to its own invoker.
type functionSet map[string]gateway.Invoker

func (f functionSet) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	inv, ok := f[function]
	if !ok {
		return nil, fmt.Errorf("no function %q", function)
	}
	return inv.Invoke(ctx, function, payload)
}

// inProcessHandlers are mastersocket's functions that can run in this
// process, by CodeUri. Any other function of the template (a route added
// with a function of its own) runs as a binary, whatever the mode.
var inProcessHandlers = map[string]func(*handler.Handlers) any{
	"functions/connect":    func(h *handler.Handlers) any { return h.Connect },
	"functions/disconnect": func(h *handler.Handlers) any { return h.Disconnect },
	"functions/message":    func(h *handler.Handlers) any { return h.Message },
	"functions/sweeper":    func(h *handler.Handlers) any { return h.Sweep },
	"functions/authorizer": func(h *handler.Handlers) any { return h.Authorize },
	"functions/fanout":     func(h *handler.Handlers) any { return h.FanOut },
}

// invoker returns what runs fn: in this process when the mode and the
// function allow it, otherwise its built bootstrap in a process pool.
func (s *Server) invoker(ctx context.Context, o Options, tmpl *template.Template, fn template.Function, vars map[string]string, store handler.Store) (gateway.Invoker, error) {
	pick, known := inProcessHandlers[strings.Trim(filepath.ToSlash(fn.CodeURI), "/")]
	if o.Functions == FunctionsInProcess && known {
		settings, err := handler.SettingsFromEnv(func(k string) string { return vars[k] })
		if err != nil {
			return nil, err
		}
		// The real SDK client, carried in memory to the gateway's handler.
		// The local management API checks no signature, so requests to it
		// go unsigned (anonymous credentials) to save the signing work.
		awsCfg := aws.Config{Region: localRegion, Credentials: aws.AnonymousCredentials{}}
		transport := s.Gateway.ManagementTransport()
		if o.ManagementTransport != nil {
			transport = o.ManagementTransport(transport)
		}
		inMemory := &http.Client{Transport: transport}
		if o.WrapStore != nil {
			store = o.WrapStore(store)
		}
		var dispatcher router.Dispatcher
		if settings.FanOutFunction != "" {
			// The real Lambda SDK client, carried in memory to the local
			// Invoke API.
			if dispatcher, err = asyncinvoke.New(awsCfg, asyncinvoke.Config{
				Function: settings.FanOutFunction, HTTPClient: inMemory, Endpoint: "http://" + s.Gateway.Addr(),
			}); err != nil {
				return nil, err
			}
		}
		h, err := handler.New(handler.Backend{
			Dispatcher: dispatcher,
			Store:      store,
			NewSender: func(endpoint string) (handler.Sender, error) {
				cfg := settings.SenderConfig(endpoint)
				if endpoint == s.Gateway.ManagementEndpoint() {
					cfg.HTTPClient = inMemory
				}
				return mgmtapi.New(awsCfg, cfg)
			},
			Settings: settings,
			Logger:   o.Logger.With("function", fn.LogicalID),
		})
		if err != nil {
			return nil, err
		}
		return gateway.NewInProcess(map[string]any{fn.LogicalID: pick(h)}), nil
	}
	if o.Store == StoreMemory {
		o.Logger.Warn("this function is not one of mastersocket's: it runs as a binary, which cannot reach the in-memory store (use --store dynamodb if it needs the table)",
			"function", fn.LogicalID, "code", fn.CodeURI)
	}
	if s.buildDir == "" {
		// A folder of this run's own: two gateways side by side (two test
		// runs, two projects) never overwrite each other's bootstraps.
		if err := os.MkdirAll(o.BuildDir, 0o755); err != nil {
			return nil, fmt.Errorf("build folder: %w", err)
		}
		dir, err := os.MkdirTemp(o.BuildDir, "run-*")
		if err != nil {
			return nil, fmt.Errorf("build folder: %w", err)
		}
		s.buildDir = dir
	}
	out := filepath.Join(s.buildDir, fn.LogicalID, "bootstrap")
	start := time.Now()
	if err := lambdart.Build(ctx, tmpl.CodeDir(fn), out); err != nil {
		return nil, err
	}
	o.Logger.Info("BUILD", "function", fn.LogicalID, "path", out, "duration", time.Since(start).Round(time.Millisecond).String())
	// The functions' Lambda SDK clients reach the local Invoke API.
	procEnv := []string{"AWS_REGION=" + localRegion, "AWS_ENDPOINT_URL_LAMBDA=http://" + s.Gateway.Addr()}
	if o.DynamoDBEndpoint != "" {
		// A local engine: any credentials, the same as this process's
		// (DynamoDB Local keeps one database per access key and region).
		procEnv = append(procEnv, "AWS_ENDPOINT_URL_DYNAMODB="+o.DynamoDBEndpoint,
			"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local")
	} else {
		// Real AWS: the functions use this user's credentials and region.
		for _, kv := range os.Environ() {
			if strings.HasPrefix(kv, "AWS_") || strings.HasPrefix(kv, "HOME=") {
				procEnv = append(procEnv, kv)
			}
		}
	}
	for k, v := range vars {
		procEnv = append(procEnv, k+"="+v)
	}
	slices.Sort(procEnv)
	timeout := time.Duration(fn.Timeout) * time.Second
	pool, err := lambdart.NewPool(lambdart.Function{
		Name: fn.LogicalID, Path: out, Env: procEnv, Timeout: timeout, MemoryMB: fn.MemorySize, Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	s.pools = append(s.pools, pool)
	return poolInvoker{pool}, nil
}

type poolInvoker struct{ p *lambdart.Pool }

func (p poolInvoker) Invoke(ctx context.Context, _ string, payload []byte) ([]byte, error) {
	return p.p.Invoke(ctx, payload)
}

// envResolver turns a function's template environment into local values:
// parameters take their defaults (StageName the local stage), pseudo
// parameters local values, the table its local name, and the API's domain
// (https://API.execute-api.REGION.amazonaws.com) the gateway's address.
type envResolver struct {
	tmpl   *template.Template
	params map[string]string // parameter values: defaults and overrides
	stage  string
	addr   string
	table  string
}

func (r envResolver) environment(fn template.Function) (map[string]string, error) {
	lookup := r.lookup()
	domain := localAPIID + ".execute-api." + localRegion + ".amazonaws.com"
	out := make(map[string]string, len(fn.Environment))
	for k, v := range fn.Environment {
		val, err := template.Expand(v, lookup)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", k, err)
		}
		val = strings.ReplaceAll(val, "https://"+domain, "http://"+r.addr)
		val = strings.ReplaceAll(val, "wss://"+domain, "ws://"+r.addr)
		out[k] = val
	}
	// The functions write no metrics here: a line of embedded metric
	// format per invocation would fill the local gateway's log, and no
	// CloudWatch reads it (the inspector page shows the traffic).
	out[handler.EnvMetrics] = "off"
	return out, nil
}

// lookup returns the local value of a name the template refers to.
func (r envResolver) lookup() func(name string) (string, bool) {
	params := r.params
	api, _ := r.tmpl.WebSocketAPI()
	tables := r.tmpl.CFN.GetAllDynamoDBTableResources()
	// The parameter that names the stage, if the stage takes it from one,
	// is the local stage.
	stageParam := "StageName"
	for _, st := range r.tmpl.CFN.GetAllApiGatewayV2StageResources() {
		if p, ok := strings.CutPrefix(st.StageName, template.RefPrefix); ok {
			stageParam = p
		}
	}
	lookup := func(name string) (string, bool) {
		switch name {
		case stageParam:
			return r.stage, true
		case "AWS::Region":
			return localRegion, true
		case "AWS::AccountId":
			return localAccount, true
		case "AWS::Partition":
			return "aws", true
		case "AWS::URLSuffix":
			return "amazonaws.com", true
		case "AWS::StackName":
			return "mastersocket-local", true
		case api:
			return localAPIID, true
		}
		if v, ok := params[name]; ok {
			return v, true
		}
		if _, ok := tables[name]; ok {
			return r.table, true
		}
		if res, attr, ok := strings.Cut(name, "."); ok && attr == "Arn" {
			return r.arn(res), true
		}
		if _, ok := r.tmpl.CFN.Resources[name]; ok {
			return name, true
		}
		return "", false
	}
	return lookup
}

// describe returns "k=v" lines of an environment, for verbose logs.
func describe(vars map[string]string) string {
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strconv.Quote(vars[k]) + " ")
	}
	return b.String()
}

// arn returns a local ARN for a resource of the template, by its type.
func (r envResolver) arn(logicalID string) string {
	prefix := "arn:aws:"
	res, ok := r.tmpl.CFN.Resources[logicalID]
	if !ok {
		return prefix + "local:" + localRegion + ":" + localAccount + ":" + logicalID
	}
	switch res.AWSCloudFormationType() {
	case "AWS::Serverless::Function", "AWS::Lambda::Function":
		return prefix + "lambda:" + localRegion + ":" + localAccount + ":function:" + logicalID
	case "AWS::DynamoDB::Table":
		return prefix + "dynamodb:" + localRegion + ":" + localAccount + ":table/" + r.table
	case "AWS::SQS::Queue":
		return prefix + "sqs:" + localRegion + ":" + localAccount + ":" + logicalID
	default:
		return prefix + "local:" + localRegion + ":" + localAccount + ":" + logicalID
	}
}

// howToConnect tells a person how to connect to url with tok, and what to
// type then: with connect auth, the handshake carries the token and the
// group, and an EVENT may follow at once; without, IDENTIFY comes first.
func howToConnect(url, tok string, connectAuth bool) string {
	if connectAuth {
		return fmt.Sprintf(`Connect (wscat: npm i -g wscat, or npx wscat):
  wscat -c '%s?group=demo' -H 'Authorization: Bearer %s'
then send at once, with no IDENTIFY:
  {"op":0,"event":"HELLO","data":{"n":1},"intent":{"target":"GROUP","identifier":"demo"}}
and {"op":1} to learn your service id. A browser offers the token as a subprotocol:
  new WebSocket('%s?group=demo', ['mastersocket', 'bearer.%s'])
`, url, tok, url, tok)
	}
	return fmt.Sprintf(`Connect (wscat: npm i -g wscat, or npx wscat):
  wscat -c '%s'
then identify first, and wait for the answer:
  {"op":1,"data":{"token":"%s","group":"demo"}}
`, url, tok)
}

// tokenPattern matches a token that mastersocket generated (see
// token.Prefix), wherever it appears.
var tokenPattern = regexp.MustCompile(regexp.QuoteMeta(token.Prefix) + `[A-Za-z0-9_-]+`)

// redactTokens is the local gateway's redaction of verbose logs: every
// JSON member named like a secret (IDENTIFY's data.token among them), and
// any mastersocket token wherever else it appears.
func redactTokens(s string) string {
	return gateway.RedactSecretsWith(s, func(v string) string {
		return tokenPattern.ReplaceAllString(v, token.Prefix+gateway.Redacted)
	})
}
