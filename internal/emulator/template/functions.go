package template

import (
	"encoding/json"
	"path/filepath"
	"sort"

	"github.com/awslabs/goformation/v7/cloudformation/global"
	"github.com/awslabs/goformation/v7/cloudformation/serverless"
)

// Function is an AWS::Serverless::Function with the template's
// Globals.Function merged in the way SAM merges them: a value the function
// sets wins over the global one, maps (Environment.Variables) are merged key
// by key with the function's keys winning, and lists (Architectures) are the
// global entries followed by the function's.
type Function struct {
	LogicalID string
	// CodeURI is CodeUri as written when it is a local path ("functions/connect"),
	// relative to the template's directory (see CodeDir); "" when it is an S3
	// location or absent.
	CodeURI string
	Handler string
	Runtime string
	// Architectures: "arm64" or "x86_64"; Lambda accepts exactly one.
	Architectures []string
	// Environment holds the environment variables as written, intrinsics
	// rendered as described in the package documentation: "ref:Table",
	// "ref:MaxMessageBytes" or a Sub template such as
	// "https://${WebSocketApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}".
	// Expand with the values of those names gives what Lambda would set.
	Environment map[string]string
	// Timeout in seconds and MemorySize in MB; 0 when unset (Lambda then
	// uses 3 s and 128 MB).
	Timeout    int
	MemorySize int
	// BuildMethod is the function's Metadata.BuildMethod ("go1.x").
	BuildMethod string
	// Role is the function's own execution role, if it sets one. SAM then
	// ignores Policies.
	Role string
	// Policies are the entries of the function's Policies, in order.
	Policies []Policy
	// FunctionName is FunctionName as written (a Sub template such as
	// "${AWS::StackName}-fanout"); "" when CloudFormation names the
	// function.
	FunctionName string
	// Async is the function's EventInvokeConfig.
	Async AsyncConfig
}

// AsyncConfig is how Lambda handles a function's asynchronous invocations
// (EventInvokeConfig): nil fields are unset, and take Lambda's defaults.
type AsyncConfig struct {
	MaximumRetryAttempts     *int
	MaximumEventAgeInSeconds *int
	// OnFailure is the on-failure destination as written
	// ("getatt:FanOutFailures.Arn"), or "".
	OnFailure string
}

// Policy is one entry of a function's Policies. Exactly one of Managed,
// Template and Statements is set, unless the entry has a shape SAM does not
// accept either; Raw always holds the entry.
type Policy struct {
	// Managed is the name or ARN of a managed policy (a string entry).
	Managed string
	// Template is the name of a SAM policy template ("DynamoDBCrudPolicy"),
	// Parameters its parameters ({"TableName": "ref:Table"}).
	Template   string
	Parameters map[string]any
	// Statements are the statements of an inline policy document.
	Statements []Statement
	Raw        any
}

// Statement is a statement of an inline policy document. Action, Resource
// and their Not forms hold the strings written (a single string becomes a
// one-element list; a value that is not a string is kept as its JSON text).
type Statement struct {
	Effect      string
	Action      []string
	NotAction   []string
	Resource    []string
	NotResource []string
	Condition   any
}

// CodeDir returns the directory of f's code: CodeURI joined to the
// template's directory, or "" when f has no local CodeUri.
func (t *Template) CodeDir(f Function) string {
	if f.CodeURI == "" {
		return ""
	}
	if filepath.IsAbs(f.CodeURI) {
		return f.CodeURI
	}
	return filepath.Join(t.Dir, filepath.FromSlash(f.CodeURI))
}

// Functions returns the template's AWS::Serverless::Function resources by
// logical id, Globals.Function merged in.
func (t *Template) Functions() map[string]Function {
	g, err := t.CFN.GetServerlessGlobalFunction()
	if err != nil {
		g = &global.Function{}
	}
	out := map[string]Function{}
	for id, fn := range t.CFN.GetAllServerlessFunctionResources() {
		f := Function{
			LogicalID:   id,
			CodeURI:     firstNonEmpty(codeURI(fn.CodeUri), codeURI(g.CodeUri)),
			Handler:     firstNonEmpty(str(fn.Handler), str(g.Handler)),
			Runtime:     firstNonEmpty(str(fn.Runtime), str(g.Runtime)),
			Timeout:     firstInt(fn.Timeout, g.Timeout),
			MemorySize:  firstInt(fn.MemorySize, g.MemorySize),
			Role:        str(fn.Role),
			Environment: map[string]string{},
			Policies:    t.policies(id),
		}
		if g.Architectures != nil {
			f.Architectures = append(f.Architectures, *g.Architectures...)
		}
		f.Architectures = append(f.Architectures, fn.Architectures...)
		if g.Environment != nil {
			for k, v := range g.Environment.Variables {
				f.Environment[k] = v
			}
		}
		if fn.Environment != nil {
			for k, v := range fn.Environment.Variables {
				f.Environment[k] = v
			}
		}
		f.FunctionName = str(fn.FunctionName)
		if c := fn.EventInvokeConfig; c != nil {
			f.Async.MaximumRetryAttempts = c.MaximumRetryAttempts
			f.Async.MaximumEventAgeInSeconds = c.MaximumEventAgeInSeconds
			if d := c.DestinationConfig; d != nil && d.OnFailure != nil {
				f.Async.OnFailure = d.OnFailure.Destination
			}
		}
		if bm, ok := fn.AWSCloudFormationMetadata["BuildMethod"].(string); ok {
			f.BuildMethod = bm
		}
		out[id] = f
	}
	return out
}

// FunctionIDs returns the logical ids of Functions, sorted.
func (t *Template) FunctionIDs() []string {
	var ids []string
	for id := range t.CFN.GetAllServerlessFunctionResources() {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// policies reads the function's Policies from the processed JSON rather
// than from goformation's Function_Policies, which decodes a list into three
// typed lists and silently drops what none of them knows (a SAM policy
// template newer than goformation, say).
func (t *Template) policies(id string) []Policy {
	res, _ := t.raw["Resources"].(map[string]any)
	r, _ := res[id].(map[string]any)
	props, _ := r["Properties"].(map[string]any)
	var entries []any
	switch v := props["Policies"].(type) {
	case nil:
		return nil
	case []any:
		entries = v
	default:
		entries = []any{v}
	}
	out := make([]Policy, 0, len(entries))
	for _, e := range entries {
		p := Policy{Raw: e}
		switch v := e.(type) {
		case string:
			p.Managed = v
		case map[string]any:
			if st, ok := v["Statement"]; ok {
				p.Statements = statements(st)
				break
			}
			if len(v) == 1 {
				for name, params := range v {
					p.Template = name
					p.Parameters, _ = params.(map[string]any)
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func statements(v any) []Statement {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]Statement, 0, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		effect, _ := m["Effect"].(string)
		out = append(out, Statement{
			Effect:      effect,
			Action:      strs(m["Action"]),
			NotAction:   strs(m["NotAction"]),
			Resource:    strs(m["Resource"]),
			NotResource: strs(m["NotResource"]),
			Condition:   m["Condition"],
		})
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			out = append(out, jsonText(e))
		}
		return out
	default:
		return []string{jsonText(x)}
	}
}

func jsonText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func firstInt(p ...*int) int {
	for _, v := range p {
		if v != nil {
			return *v
		}
	}
	return 0
}

func codeURI(c *serverless.Function_CodeUri) string {
	if c == nil || c.String == nil {
		return ""
	}
	return *c.String
}
