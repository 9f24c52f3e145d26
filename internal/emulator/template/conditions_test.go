package template

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// conditionsTemplate uses every form of condition this package evaluates,
// in short and long form.
const conditionsTemplate = `
Parameters:
  Mode: {Type: String, Default: a, AllowedValues: [a, b, c]}
  Size: {Type: Number, Default: 2, MinValue: 1, MaxValue: 9}
Conditions:
  IsA: !Equals [!Ref Mode, a]
  IsB: {"Fn::Equals": ["b", {"Ref": "Mode"}]}
  NotA: !Not [!Condition IsA]
  NotALong: {"Fn::Not": [{"Condition": "IsA"}]}
  AOrB: !Or [!Condition IsA, !Condition IsB]
  BAndBig: !And [!Condition IsB, !Equals [!Ref Size, 9]]
  BigNumber: !Equals [9, !Ref Size]
  InUsEast1: !Equals [!Ref AWS::Region, us-east-1]
  SubMode: !Equals [!Sub "${Mode}-${AWS::Partition}", a-aws]
  JoinMode: !Equals [!Join ["-", [!Ref Mode, x]], b-x]
Resources:
  Always:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !If [IsA, ta, !If [IsB, tb, tc]]
      DisplayName: !If [NotA, shown, !Ref AWS::NoValue]
      Tags:
        - {Key: first, Value: "1"}
        - !If [IsA, !Ref AWS::NoValue, {Key: second, Value: "2"}]
  OnlyA:
    Type: AWS::SNS::Topic
    Condition: IsA
  OnlyB:
    Type: AWS::SNS::Topic
    Condition: IsB
    Properties:
      TopicName: !GetAtt Always.TopicName
Outputs:
  A:
    Condition: IsA
    Value: !Ref OnlyA
  B:
    Condition: IsB
    Value: !Ref OnlyB
`

func TestConditionsAreEvaluatedWithParameterValues(t *testing.T) {
	tests := []struct {
		name       string
		overrides  map[string]string
		conditions map[string]bool // the ones that are true; the others must be false
		resources  []string
		outputs    []string
		topicName  string
		display    string // "" for absent
		tags       []string
	}{
		{
			name:       "defaults take the true branches of IsA",
			conditions: map[string]bool{"IsA": true, "AOrB": true, "InUsEast1": true, "SubMode": true},
			resources:  []string{"Always", "OnlyA"},
			outputs:    []string{"A"},
			topicName:  "ta",
			tags:       []string{"first"},
		},
		{
			name:       "an override takes the false branches of IsA",
			overrides:  map[string]string{"Mode": "b"},
			conditions: map[string]bool{"IsB": true, "NotA": true, "NotALong": true, "AOrB": true, "InUsEast1": true, "JoinMode": true},
			resources:  []string{"Always", "OnlyB"},
			outputs:    []string{"B"},
			topicName:  "tb",
			display:    "shown",
			tags:       []string{"first", "second"},
		},
		{
			name:      "And needs both conditions true",
			overrides: map[string]string{"Mode": "b", "Size": "9"},
			conditions: map[string]bool{"IsB": true, "NotA": true, "NotALong": true, "AOrB": true, "BAndBig": true, "BigNumber": true,
				"InUsEast1": true, "JoinMode": true},
			resources: []string{"Always", "OnlyB"},
			outputs:   []string{"B"},
			topicName: "tb",
			display:   "shown",
			tags:      []string{"first", "second"},
		},
		{
			name:       "Or is false when neither condition is true",
			overrides:  map[string]string{"Mode": "c"},
			conditions: map[string]bool{"NotA": true, "NotALong": true, "InUsEast1": true},
			resources:  []string{"Always"},
			topicName:  "tc",
			display:    "shown",
			tags:       []string{"first", "second"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := ParseWithParameters([]byte(conditionsTemplate), ".", tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range sortedKeys(tpl.CFN.Conditions) {
				if got, want := tpl.CFN.Conditions[name], tc.conditions[name]; got != want {
					t.Errorf("condition %s: got %v, want %v", name, got, want)
				}
			}
			if got := sortedKeys(tpl.CFN.Resources); !slices.Equal(got, tc.resources) {
				t.Errorf("resources: got %v, want %v", got, tc.resources)
			}
			if got := sortedKeys(tpl.CFN.Outputs); !slices.Equal(got, tc.outputs) {
				t.Errorf("outputs: got %v, want %v", got, tc.outputs)
			}
			topic := tpl.CFN.GetAllSNSTopicResources()["Always"]
			if got := str(topic.TopicName); got != tc.topicName {
				t.Errorf("TopicName: got %q, want %q", got, tc.topicName)
			}
			if got := str(topic.DisplayName); got != tc.display {
				t.Errorf("DisplayName: got %q, want %q", got, tc.display)
			}
			var tags []string
			for _, tag := range topic.Tags {
				tags = append(tags, tag.Key)
			}
			if !slices.Equal(tags, tc.tags) {
				t.Errorf("Tags: got %v, want %v", tags, tc.tags)
			}
		})
	}
}

func TestParameterValuesAreTheDefaultsOverridden(t *testing.T) {
	tpl, err := ParseWithParameters([]byte(conditionsTemplate), ".", map[string]string{"Mode": "c"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Mode": "c", "Size": "2"}
	if got := tpl.ParameterValues(); !reflect.DeepEqual(got, want) {
		t.Errorf("ParameterValues(): got %v, want %v", got, want)
	}
	if got, want := tpl.ParameterDefaults(), map[string]string{"Mode": "a", "Size": "2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ParameterDefaults(): got %v, want %v", got, want)
	}
	tpl.ParameterValues()["Mode"] = "changed"
	if got := tpl.ParameterValues()["Mode"]; got != "c" {
		t.Errorf("ParameterValues() after changing the map it returned: got Mode %q, want %q", got, "c")
	}
}

func TestTemplatesThatConditionsCannotEvaluateAreRefused(t *testing.T) {
	const head = `
Parameters:
  Mode: {Type: String, Default: a, AllowedValues: [a, b]}
  Size: {Type: Number, Default: 2, MinValue: 1, MaxValue: 9}
  NoDefault: {Type: String}
`
	tests := []struct {
		name      string
		body      string
		overrides map[string]string
		wantErr   []string // parts of the error
	}{
		{
			name: "an Fn::If naming an undefined condition",
			body: `
Conditions:
  IsA: !Equals [!Ref Mode, a]
Resources:
  T: {Type: AWS::SNS::Topic, Properties: {TopicName: !If [Nope, x, y]}}
`,
			wantErr: []string{"Resources.T.Properties.TopicName: Fn::If: condition Nope is not defined (the template defines IsA)"},
		},
		{
			name: "a resource Condition naming an undefined condition",
			body: `
Resources:
  T: {Type: AWS::SNS::Topic, Condition: Nope}
`,
			wantErr: []string{"resource T: condition Nope is not defined (the template defines none)"},
		},
		{
			name: "an Fn::Or naming an undefined condition",
			body: `
Conditions:
  IsA: !Equals [!Ref Mode, a]
  Either: !Or [!Condition IsA, !Condition Nope]
`,
			wantErr: []string{"condition Either: Fn::Or: condition Nope is not defined"},
		},
		{
			name: "conditions in a cycle",
			body: `
Conditions:
  A: !Not [!Condition B]
  B: !And [!Condition C, !Equals [!Ref Mode, a]]
  C: !Not [!Condition A]
`,
			wantErr: []string{"conditions refer to each other in a cycle: A → B → C → A"},
		},
		{
			name: "a condition referring to itself",
			body: `
Conditions:
  A: {"Fn::Not": [{"Condition": "A"}]}
`,
			wantErr: []string{"cycle: A → A"},
		},
		{
			name: "a condition referring to a resource",
			body: `
Conditions:
  A: !Equals [!Ref T, x]
Resources:
  T: {Type: AWS::SNS::Topic}
`,
			wantErr: []string{"condition A: Fn::Equals: Ref T: not a parameter of the template"},
		},
		{
			name: "a condition on a parameter without a value",
			body: `
Conditions:
  A: !Equals [!Ref NoDefault, x]
`,
			wantErr: []string{"Ref NoDefault: the parameter has no default and no value was given"},
		},
		{
			name: "an intrinsic conditions do not support",
			body: `
Conditions:
  A: !Equals [!Select [0, [a, b]], a]
`,
			wantErr: []string{"condition A: Fn::Equals: Fn::Select is not supported in conditions here"},
		},
		{
			name: "an Fn::Equals of three values",
			body: `
Conditions:
  A: !Equals [a, a, a]
`,
			wantErr: []string{"condition A: Fn::Equals: got [\"a\",\"a\",\"a\"], want a list of two values"},
		},
		{
			name: "an Fn::And of one condition",
			body: `
Conditions:
  A: !Equals [a, a]
  B: !And [!Condition A]
`,
			wantErr: []string{"condition B: Fn::And: got [\"A\"], want a list of 2 to 10 conditions"},
		},
		{
			name: "an Fn::If without its false branch",
			body: `
Conditions:
  A: !Equals [a, a]
Resources:
  T: {Type: AWS::SNS::Topic, Properties: {TopicName: !If [A, x]}}
`,
			wantErr: []string{"Resources.T.Properties.TopicName: Fn::If: got [\"A\",\"x\"], want [condition, value if true, value if false]"},
		},
		{
			name: "a resource referring to one that is not created",
			body: `
Conditions:
  IsB: !Equals [!Ref Mode, b]
Resources:
  OnlyB: {Type: AWS::SNS::Topic, Condition: IsB}
  Sub: {Type: AWS::SNS::Topic, Properties: {TopicName: !Sub "${OnlyB.TopicName}-x"}}
  Later: {Type: AWS::SNS::Topic, DependsOn: [OnlyB]}
  Fine: {Type: AWS::SNS::Topic, Properties: {TopicName: !If [IsB, !GetAtt OnlyB.TopicName, none]}}
Outputs:
  Out: {Value: !Ref OnlyB}
`,
			wantErr: []string{
				"resource Sub refers to OnlyB, which is not created when condition IsB is false",
				"resource Later (DependsOn) refers to OnlyB",
				"output Out refers to OnlyB",
			},
		},
		{
			name:      "overrides the parameters refuse",
			body:      "Resources:\n  T: {Type: AWS::SNS::Topic}\n",
			overrides: map[string]string{"Mode": "z", "Size": "10", "Nope": "1"},
			wantErr: []string{
				`parameter Mode="z": want one of [a b]`,
				"parameter Size=10: want 1 to 9",
				"parameter Nope: the template has no such parameter (it has Mode, NoDefault, Size)",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseWithParameters([]byte(head+tc.body), ".", tc.overrides)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if n := strings.Count(err.Error(), want); n != 1 {
					t.Errorf("got error %q, containing %q %d times, want once", err, want, n)
				}
			}
		})
	}
}

func TestFnIfChoosesTheResourceReferencedOnlyWhenItExists(t *testing.T) {
	tpl, err := ParseWithParameters([]byte(conditionsTemplate), ".", map[string]string{"Mode": "b"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := str(tpl.CFN.GetAllSNSTopicResources()["OnlyB"].TopicName), "getatt:Always.TopicName"; got != want {
		t.Errorf("OnlyB TopicName: got %q, want %q", got, want)
	}
	if got, want := tpl.CFN.Outputs["B"].Value, any("ref:OnlyB"); got != want {
		t.Errorf("output B: got %v, want %v", got, want)
	}
}

// --------------------------------------------------- template.yaml's modes

func TestConnectAuthRequiredByDefaultPutsAnAuthorizerOnConnect(t *testing.T) {
	tpl := loadTemplate(t)
	if got := tpl.ParameterValues()["ConnectAuth"]; got != "required" {
		t.Errorf("ConnectAuth: got %q, want required", got)
	}
	if got := tpl.CFN.Conditions["ConnectAuthRequired"]; got != true {
		t.Errorf("condition ConnectAuthRequired: got %v, want true", got)
	}
	routes, err := tpl.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		var want *Authorizer
		if r.Key == "$connect" {
			want = &Authorizer{LogicalID: "Authorizer", Type: "REQUEST", Function: "AuthorizerFunction"}
		}
		if !reflect.DeepEqual(r.Authorizer, want) {
			t.Errorf("route %s: got authorizer %+v, want %+v", r.Key, r.Authorizer, want)
		}
	}
	fn, ok := tpl.Functions()["AuthorizerFunction"]
	if !ok {
		t.Fatalf("functions: got %v, want AuthorizerFunction among them", tpl.FunctionIDs())
	}
	if got, want := fn.Environment["AUTH_CACHE_SECONDS"], "ref:AuthorizerCacheSeconds"; got != want {
		t.Errorf("AuthorizerFunction AUTH_CACHE_SECONDS: got %q, want %q", got, want)
	}
	if got, want := fn.CodeURI, "functions/authorizer"; got != want {
		t.Errorf("AuthorizerFunction CodeUri: got %q, want %q", got, want)
	}
	var got []Statement
	for _, p := range fn.Policies {
		if p.Statements == nil {
			t.Errorf("AuthorizerFunction: got policy %v, want only a policy document", p.Raw)
		}
		got = append(got, p.Statements...)
	}
	want := []Statement{{Effect: "Allow", Action: []string{"dynamodb:GetItem"}, Resource: []string{"getatt:Table.Arn"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AuthorizerFunction statements: got %+v, want %+v", got, want)
	}
	for _, id := range []string{"Authorizer", "AuthorizerPermission"} {
		if _, ok := tpl.CFN.Resources[id]; !ok {
			t.Errorf("got no resource %s, want one", id)
		}
	}
}

func TestConnectAuthOffLeavesNoAuthorizerBehind(t *testing.T) {
	tpl, err := LoadWithParameters(templatePath, map[string]string{"ConnectAuth": "off"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tpl.ParameterValues()["ConnectAuth"]; got != "off" {
		t.Errorf("ConnectAuth: got %q, want off", got)
	}
	routes, err := tpl.Routes()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Authorizer != nil {
			t.Errorf("route %s: got authorizer %+v, want none", r.Key, r.Authorizer)
		}
	}
	connect := tpl.CFN.GetAllApiGatewayV2RouteResources()["ConnectRoute"]
	if got := str(connect.AuthorizationType); got != "NONE" {
		t.Errorf("ConnectRoute AuthorizationType: got %q, want NONE", got)
	}
	if connect.AuthorizerId != nil {
		t.Errorf("ConnectRoute AuthorizerId: got %q, want absent", *connect.AuthorizerId)
	}
	for _, id := range []string{"AuthorizerFunction", "Authorizer", "AuthorizerPermission"} {
		if _, ok := tpl.CFN.Resources[id]; ok {
			t.Errorf("got resource %s, want none with ConnectAuth off", id)
		}
	}
	// The operations resources are in the raw tree only (untypedResources).
	res, _ := tpl.raw["Resources"].(map[string]any)
	for _, id := range []string{"AuthorizerLogGroup", "AuthorizerErrorsAlarm"} {
		if _, ok := res[id]; ok {
			t.Errorf("got resource %s, want none with ConnectAuth off", id)
		}
	}
	if got, want := tpl.FunctionIDs(), []string{"ConnectFunction", "DisconnectFunction", "FanOutFunction", "MessageFunction", "SweeperFunction"}; !slices.Equal(got, want) {
		t.Errorf("functions: got %v, want %v", got, want)
	}
	// Everything else about the template holds in this mode too.
	for _, c := range checks {
		if c.name == "authorizer" || c.name == "runtime" {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			tpl := tpl
			if c.params != nil {
				params := map[string]string{"ConnectAuth": "off"}
				maps.Copy(params, c.params)
				var err error
				if tpl, err = LoadWithParameters(templatePath, params); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.fn(tpl, repoRoot); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestConnectAuthRefusesOtherModes(t *testing.T) {
	_, err := LoadWithParameters(templatePath, map[string]string{"ConnectAuth": "maybe"})
	if want := `parameter ConnectAuth="maybe": want one of [required off]`; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got error %v, want one containing %q", err, want)
	}
}
