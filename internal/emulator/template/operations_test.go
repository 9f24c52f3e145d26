package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/mastersocket/mastersocket/internal/telemetry"
)

// The operations resources (docs/OPERATIONS.md): log groups, the stage's
// access log, the dashboard and the alarms. They are not in the typed
// template (see untypedResources): these checks read the raw tree.

// wantRetentionDays are the values of LogRetentionDays: those that both
// CloudWatch Logs' PutRetentionPolicy and AWS::Logs::LogGroup accept.
var wantRetentionDays = []string{"1", "3", "5", "7", "14", "30", "60", "90", "120", "150", "180", "365", "400", "545", "731", "1827", "3653"}

// wantAccessLogFields are the fields every access log line must carry, and
// the WebSocket API $context variable of each.
var wantAccessLogFields = map[string]string{
	"requestId":          "$context.requestId",
	"extendedRequestId":  "$context.extendedRequestId",
	"connectionId":       "$context.connectionId",
	"eventType":          "$context.eventType",
	"routeKey":           "$context.routeKey",
	"status":             "$context.status",
	"requestTime":        "$context.requestTime",
	"requestTimeEpoch":   "$context.requestTimeEpoch",
	"ip":                 "$context.identity.sourceIp",
	"integrationStatus":  "$context.integrationStatus",
	"integrationLatency": "$context.integrationLatency",
	"integrationError":   "$context.integration.error",
	"errorMessage":       "$context.error.message",
	"authorizerError":    "$context.authorizer.error",
}

// accessLogARNPrefix starts the access log's destination: the ARN of a log
// group as API Gateway documents it (Fn::GetAtt's ends in ":*"), the
// group's name from its Ref.
const accessLogARNPrefix = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${"

// testTopicArn is the AlarmTopicArn the alarm-actions check loads the
// template with.
const testTopicArn = "arn:aws:sns:us-east-1:123456789012:ops"

// rawResources returns the resources of type typ as the raw tree holds
// them (intrinsics rendered as the package documentation says), by id.
func rawResources(tpl *Template, typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	res, _ := tpl.raw["Resources"].(map[string]any)
	for id, r := range res {
		m, _ := r.(map[string]any)
		if m["Type"] == typ {
			out[id] = m
		}
	}
	return out
}

func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// text returns a raw scalar as text: a number as its decimal text.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	case nil:
		return ""
	}
	return jsonText(v)
}

// checkLogs checks that every function logs to a log group of its own,
// created by the stack with RetentionInDays from LogRetentionDays and
// attached through LoggingConfig (a /aws/lambda/<name> group created by
// the stack races Lambda creating it), under the same condition as its
// function; that the functions keep the Text log format (their lines are
// already JSON); and that LogRetentionDays defaults to 30 and allows only
// the values CloudWatch Logs accepts.
func checkLogs(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if got := tpl.ParameterDefaults()["LogRetentionDays"]; got != "30" {
		fail("parameter LogRetentionDays: got default %q, want \"30\"", got)
	}
	if got := tpl.CFN.Parameters["LogRetentionDays"].AllowedValues; !slices.Equal(strs(got), wantRetentionDays) {
		fail("parameter LogRetentionDays: got allowed values %v, want %v", got, wantRetentionDays)
	}
	groups := rawResources(tpl, "AWS::Logs::LogGroup")
	for _, id := range sortedKeys(groups) {
		if got := text(props(groups[id])["RetentionInDays"]); got != "ref:LogRetentionDays" {
			fail("log group %s: got RetentionInDays %q, want ref:LogRetentionDays", id, got)
		}
	}
	res, _ := tpl.raw["Resources"].(map[string]any)
	owner := map[string]string{}
	for _, id := range tpl.FunctionIDs() {
		fn, _ := res[id].(map[string]any)
		lc, _ := props(fn)["LoggingConfig"].(map[string]any)
		if lc == nil {
			fail("function %s: got no LoggingConfig, want LoggingConfig.LogGroup naming its log group", id)
			continue
		}
		if f := text(lc["LogFormat"]); f != "" && f != "Text" {
			fail("function %s: got LogFormat %q, want Text (the default): the functions' lines are already JSON", id, f)
		}
		ref := text(lc["LogGroup"])
		group, ok := strings.CutPrefix(ref, RefPrefix)
		if _, isGroup := groups[group]; !ok || !isGroup {
			fail("function %s: got LoggingConfig.LogGroup %q, want a Ref to an AWS::Logs::LogGroup of the template", id, ref)
			continue
		}
		if other, taken := owner[group]; taken {
			fail("log group %s: got functions %s and %s, want one each", group, other, id)
		}
		owner[group] = id
		if fc, gc := text(fn["Condition"]), text(groups[group]["Condition"]); fc != gc {
			fail("log group %s: got Condition %q, want %q as its function %s has", group, gc, fc, id)
		}
	}
	return errors.Join(errs...)
}

// checkAccessLog checks that the stage writes an access log in JSON, with
// every field of wantAccessLogFields, to a log group of the stack that
// expires after LogRetentionDays.
func checkAccessLog(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	stages := rawResources(tpl, "AWS::ApiGatewayV2::Stage")
	groups := rawResources(tpl, "AWS::Logs::LogGroup")
	for _, id := range sortedKeys(stages) {
		als, _ := props(stages[id])["AccessLogSettings"].(map[string]any)
		if als == nil {
			fail("stage %s: got no AccessLogSettings, want an access log", id)
			continue
		}
		dest := text(als["DestinationArn"])
		group, ok := strings.CutPrefix(dest, accessLogARNPrefix)
		group, ok2 := strings.CutSuffix(group, "}")
		if _, isGroup := groups[group]; !ok || !ok2 || !isGroup {
			fail("stage %s: got DestinationArn %q, want %s<log group of the template>}", id, dest, accessLogARNPrefix)
		}
		var fields map[string]any
		format := text(als["Format"])
		if err := json.Unmarshal([]byte(format), &fields); err != nil {
			fail("stage %s: got access log Format %q, want one JSON object: %v", id, format, err)
			continue
		}
		for _, name := range sortedKeys(wantAccessLogFields) {
			want := wantAccessLogFields[name]
			if got, ok := fields[name]; !ok || got != want {
				fail("stage %s: access log field %s: got %q, want %q", id, name, text(got), want)
			}
		}
	}
	return errors.Join(errs...)
}

// checkCloudWatchRole checks, with ApiGatewayCloudWatchRole create, that
// the stack sets the region's API Gateway CloudWatch Logs role (which a
// WebSocket stage's access log needs), keeps it and the setting when it is
// deleted (the setting is the region's, and other APIs may log through it),
// and that the stage waits for the setting. It loads the template with
// ApiGatewayCloudWatchRole=create (see checks).
func checkCloudWatchRole(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	p := tpl.CFN.Parameters["ApiGatewayCloudWatchRole"]
	if got := fmt.Sprint(p.AllowedValues); got != "[existing create]" {
		fail("parameter ApiGatewayCloudWatchRole: got allowed values %s, want [existing create]", got)
	}
	if got := tpl.ParameterDefaults()["ApiGatewayCloudWatchRole"]; got != "existing" {
		fail("parameter ApiGatewayCloudWatchRole: got default %q, want \"existing\": creating one replaces the region's setting", got)
	}
	accounts := rawResources(tpl, "AWS::ApiGateway::Account")
	if len(accounts) != 1 {
		return errors.Join(append(errs, fmt.Errorf("got %d AWS::ApiGateway::Account with ApiGatewayCloudWatchRole create, want 1", len(accounts)))...)
	}
	roles := rawResources(tpl, "AWS::IAM::Role")
	for id, acc := range accounts {
		for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if got := text(acc[k]); got != "Retain" {
				fail("account setting %s: got %s %q, want Retain (deleting the stack must not change the region's setting)", id, k, got)
			}
		}
		arn := text(props(acc)["CloudWatchRoleArn"])
		role, _ := strings.CutPrefix(arn, GetAttPrefix)
		role, _ = strings.CutSuffix(role, ".Arn")
		r, ok := roles[role]
		if !ok {
			fail("account setting %s: got CloudWatchRoleArn %q, want Fn::GetAtt of a role of the template", id, arn)
			continue
		}
		if got := text(r["DeletionPolicy"]); got != "Retain" {
			fail("role %s: got DeletionPolicy %q, want Retain (the region's setting keeps naming it)", role, got)
		}
		rp := props(r)
		if got := jsonText(rp["AssumeRolePolicyDocument"]); !strings.Contains(got, `"Service":"apigateway.amazonaws.com"`) {
			fail("role %s: got trust policy %s, want apigateway.amazonaws.com", role, got)
		}
		if got := jsonText(rp["ManagedPolicyArns"]); !strings.Contains(got, "policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs") {
			fail("role %s: got managed policies %s, want AmazonAPIGatewayPushToCloudWatchLogs", role, got)
		}
		for sid, st := range rawResources(tpl, "AWS::ApiGatewayV2::Stage") {
			if !refersTo(st, id) {
				fail("stage %s: got no reference to %s, want one (or DependsOn) so that the stage waits for the account setting", sid, id)
			}
		}
	}
	return errors.Join(errs...)
}

// refersTo reports whether r names the resource id: in DependsOn, a Ref, a
// GetAtt or an Fn::Sub variable.
func refersTo(r map[string]any, id string) bool {
	if d := r["DependsOn"]; d == id || slices.Contains(strs(d), id) {
		return true
	}
	found := false
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if x == RefPrefix+id || strings.HasPrefix(x, GetAttPrefix+id+".") ||
				strings.Contains(x, "${"+id+"}") || strings.Contains(x, "${"+id+".") {
				found = true
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(r["Properties"])
	return found
}

// alarmTopicActions are the AlarmActions and OKActions of every alarm when
// AlarmTopicArn is set.
var alarmTopicActions = []string{"ref:AlarmTopicArn"}

// checkAlarms checks that the alarms the issue asks for exist: each
// function's errors, failed and throttled deliveries (ours), Lambda
// throttles of every function, an integration latency near API Gateway's
// 29 s, and a message in FanOutFailures; that no data counts as nothing
// happened; and that, with AlarmTopicArn empty (its default), no alarm has
// actions.
func checkAlarms(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if got := tpl.ParameterDefaults()["AlarmTopicArn"]; got != "" {
		fail("parameter AlarmTopicArn: got default %q, want \"\"", got)
	}
	alarms := rawResources(tpl, "AWS::CloudWatch::Alarm")
	// What the alarms watch: "namespace metric dimension=value...".
	watched := map[string][]string{}
	for _, id := range sortedKeys(alarms) {
		p := props(alarms[id])
		// No data means nothing happened, except for a queue, which SQS may
		// stop reporting while a message sits in it: keep the state.
		wantMissing := "notBreaching"
		if text(p["Namespace"]) == "AWS/SQS" {
			wantMissing = "ignore"
		}
		if got := text(p["TreatMissingData"]); got != wantMissing {
			fail("alarm %s: got TreatMissingData %q, want %s", id, got, wantMissing)
		}
		for _, k := range []string{"AlarmActions", "OKActions"} {
			if v, ok := p[k]; ok {
				fail("alarm %s: got %s %s with AlarmTopicArn empty, want none", id, k, jsonText(v))
			}
		}
		for _, m := range alarmMetrics(p) {
			key := m.Namespace + " " + m.Name
			for _, d := range m.Dims {
				key += " " + d.Name + "=" + d.Value
			}
			watched[key] = append(watched[key], id)
		}
		if text(p["MetricName"]) == "IntegrationLatency" {
			if th, err := strconv.ParseFloat(text(p["Threshold"]), 64); err != nil || th >= 29000 || th < 20000 || text(p["Statistic"]) != "Maximum" {
				fail("alarm %s: got IntegrationLatency %s above %s, want Maximum at or above 20000..29000 ms (API Gateway's limit is 29 s)", id, text(p["Statistic"]), text(p["Threshold"]))
			}
		}
		if text(p["MetricName"]) == "DeliveriesFailed" {
			if th := text(p["Threshold"]); th != "ref:FailedDeliveriesThreshold" {
				fail("alarm %s: got Threshold %q, want ref:FailedDeliveriesThreshold", id, th)
			}
		}
	}
	ns := "Mastersocket/${AWS::StackName}"
	want := []string{
		ns + " DeliveriesFailed Stage=ref:StageName",
		ns + " DeliveriesThrottled Stage=ref:StageName",
		"AWS/ApiGateway IntegrationLatency ApiId=ref:WebSocketApi Stage=ref:StageName",
		"AWS/SQS ApproximateNumberOfMessagesVisible QueueName=getatt:FanOutFailures.QueueName",
	}
	for _, id := range tpl.FunctionIDs() {
		want = append(want,
			"AWS/Lambda Errors FunctionName=ref:"+id,
			"AWS/Lambda Throttles FunctionName=ref:"+id)
	}
	for _, w := range want {
		if len(watched[w]) == 0 {
			fail("got no alarm on %s, want one", w)
		}
	}
	return errors.Join(errs...)
}

// checkAlarmActions checks that every alarm notifies AlarmTopicArn, when it
// is set, of going into ALARM and back to OK. It loads the template with
// AlarmTopicArn set (see checks).
func checkAlarmActions(tpl *Template, _ string) error {
	var errs []error
	alarms := rawResources(tpl, "AWS::CloudWatch::Alarm")
	if len(alarms) == 0 {
		return errors.New("got no AWS::CloudWatch::Alarm, want the alarms of docs/OPERATIONS.md")
	}
	for _, id := range sortedKeys(alarms) {
		p := props(alarms[id])
		for _, k := range []string{"AlarmActions", "OKActions"} {
			if got := strs(p[k]); !slices.Equal(got, alarmTopicActions) {
				errs = append(errs, fmt.Errorf("alarm %s: got %s %v with AlarmTopicArn set, want %v", id, k, got, alarmTopicActions))
			}
		}
	}
	return errors.Join(errs...)
}

// A metric as an alarm or a dashboard names it.
type namedMetric struct {
	Namespace, Name string
	Dims            []dim
	// Search is true for the schema of a SEARCH expression: Dims have
	// names only.
	Search bool
	Where  string
}

type dim struct{ Name, Value string }

// alarmMetrics returns the metrics an alarm's properties name: its
// MetricName, or each MetricStat of its Metrics. Values are as rendered.
func alarmMetrics(p map[string]any) []namedMetric {
	one := func(ns, name any, dims any) namedMetric {
		m := namedMetric{Namespace: text(ns), Name: text(name)}
		list, _ := dims.([]any)
		for _, d := range list {
			dm, _ := d.(map[string]any)
			m.Dims = append(m.Dims, dim{text(dm["Name"]), text(dm["Value"])})
		}
		slices.SortFunc(m.Dims, func(a, b dim) int { return strings.Compare(a.Name, b.Name) })
		return m
	}
	if _, ok := p["MetricName"]; ok {
		return []namedMetric{one(p["Namespace"], p["MetricName"], p["Dimensions"])}
	}
	var out []namedMetric
	list, _ := p["Metrics"].([]any)
	for _, q := range list {
		qm, _ := q.(map[string]any)
		ms, _ := qm["MetricStat"].(map[string]any)
		if ms == nil {
			continue
		}
		mm, _ := ms["Metric"].(map[string]any)
		out = append(out, one(mm["Namespace"], mm["MetricName"], mm["Dimensions"]))
	}
	return out
}

// searchExpr matches SEARCH('{schema} terms', ...).
var (
	searchExpr = regexp.MustCompile(`SEARCH\(\s*'\{([^}]*)\}([^']*)'`)
	metricTerm = regexp.MustCompile(`MetricName\s*=\s*"([^"]*)"`)
	stageTerm  = regexp.MustCompile(`(?:^|\s)Stage\s*=\s*"([^"]*)"`)
)

// dashboardMetrics returns the metrics each widget of a dashboard body
// names, by a row or by a SEARCH expression's schema and MetricName.
func dashboardMetrics(body string) ([]namedMetric, error) {
	var d struct {
		Widgets []struct {
			Type       string
			Properties struct {
				Title   string
				Metrics [][]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		return nil, fmt.Errorf("DashboardBody is not JSON: %w", err)
	}
	var out []namedMetric
	var errs []error
	for _, w := range d.Widgets {
		where := fmt.Sprintf("widget %q", w.Properties.Title)
		for _, row := range w.Properties.Metrics {
			if len(row) == 0 {
				errs = append(errs, fmt.Errorf("%s: got an empty metric row", where))
				continue
			}
			if o, ok := row[0].(map[string]any); ok {
				expr := text(o["expression"])
				m := searchExpr.FindStringSubmatch(expr)
				if m == nil {
					errs = append(errs, fmt.Errorf("%s: got expression %q, want a SEARCH('{namespace,dims} MetricName=...') or a metric row", where, expr))
					continue
				}
				schema := strings.Split(m[1], ",")
				nm := namedMetric{Namespace: strings.Trim(strings.TrimSpace(schema[0]), `"`), Search: true, Where: where}
				for _, s := range schema[1:] {
					nm.Dims = append(nm.Dims, dim{Name: strings.Trim(strings.TrimSpace(s), `"`)})
				}
				if mn := metricTerm.FindStringSubmatch(m[2]); mn != nil {
					nm.Name = mn[1]
				}
				if st := stageTerm.FindStringSubmatch(m[2]); st != nil {
					for i := range nm.Dims {
						if nm.Dims[i].Name == telemetry.DimStage {
							nm.Dims[i].Value = st[1]
						}
					}
				}
				slices.SortFunc(nm.Dims, func(a, b dim) int { return strings.Compare(a.Name, b.Name) })
				out = append(out, nm)
				continue
			}
			var strsRow []string
			for _, v := range row {
				s, ok := v.(string)
				if !ok {
					break // the rendering options
				}
				strsRow = append(strsRow, s)
			}
			if len(strsRow) < 2 || len(strsRow)%2 != 0 || slices.Contains(strsRow, "...") || slices.Contains(strsRow, ".") {
				errs = append(errs, fmt.Errorf("%s: got metric row %v, want namespace, name and dimension pairs written out", where, strsRow))
				continue
			}
			nm := namedMetric{Namespace: strsRow[0], Name: strsRow[1], Where: where}
			for i := 2; i < len(strsRow); i += 2 {
				nm.Dims = append(nm.Dims, dim{strsRow[i], strsRow[i+1]})
			}
			slices.SortFunc(nm.Dims, func(a, b dim) int { return strings.Compare(a.Name, b.Name) })
			out = append(out, nm)
		}
	}
	return out, errors.Join(errs...)
}

// wantForeignDims are the dimension names of the AWS metrics the dashboard
// and the alarms use (a WebSocket API's metrics by API and stage).
var wantForeignDims = map[string]string{
	"AWS/ApiGateway": "ApiId Stage",
	"AWS/Lambda":     "FunctionName",
	"AWS/SQS":        "QueueName",
}

// checkMetrics checks that the dashboard and the alarms name only metrics
// of our namespace (METRICS_NAMESPACE, as the functions get it) that are in
// telemetry.Catalogue, each with exactly its catalogue dimensions and the
// stage's name as Stage, that AWS's metrics carry their dimensions, and
// that every Catalogue metric is on the dashboard. The dashboard body is
// read as CloudFormation would substitute it.
func checkMetrics(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	values := tpl.ParameterValues()
	values["AWS::StackName"] = "stack"
	values["AWS::Region"] = "us-east-1"
	lookup := func(name string) (string, bool) {
		if v, ok := values[name]; ok {
			return v, true
		}
		return "<" + name + ">", true // a resource's name or attribute
	}
	expand := func(v string) string {
		s, err := Expand(v, lookup)
		if err != nil {
			fail("%v", err)
		}
		return s
	}

	var nsRaw string
	if g, ok := tpl.raw["Globals"].(map[string]any); ok {
		f, _ := g["Function"].(map[string]any)
		env, _ := f["Environment"].(map[string]any)
		vars, _ := env["Variables"].(map[string]any)
		nsRaw = text(vars["METRICS_NAMESPACE"])
	}
	if nsRaw == "" {
		return errors.New("Globals: got no METRICS_NAMESPACE, want the functions' metric namespace")
	}
	ours := expand(nsRaw)
	stage := values["StageName"]

	catalogue := map[string]telemetry.Definition{}
	for _, d := range telemetry.Catalogue {
		catalogue[d.Name] = d
	}
	verify := func(where string, m namedMetric) {
		var names []string
		for _, d := range m.Dims {
			names = append(names, d.Name)
		}
		slices.Sort(names)
		if m.Namespace != ours {
			if want, ok := wantForeignDims[m.Namespace]; ok {
				if got := strings.Join(names, " "); got != want {
					fail("%s: %s %s: got dimensions [%s], want [%s]", where, m.Namespace, m.Name, got, want)
				}
				return
			}
			fail("%s: %s: got namespace %q, want %q (METRICS_NAMESPACE) or AWS's", where, m.Name, m.Namespace, ours)
			return
		}
		def, ok := catalogue[m.Name]
		if !ok {
			fail("%s: got metric %q, want one of telemetry.Catalogue", where, m.Name)
			return
		}
		want := slices.Clone(def.Dimensions)
		slices.Sort(want)
		if !slices.Equal(names, want) {
			fail("%s: %s: got dimensions %v, want exactly %v (a metric is identified by all its dimensions)", where, m.Name, names, want)
		}
		for _, d := range m.Dims {
			if d.Name == telemetry.DimStage && d.Value != stage {
				fail("%s: %s: got Stage %q, want the stage's name %q", where, m.Name, d.Value, stage)
			}
			if d.Name != telemetry.DimStage && d.Name != telemetry.DimTarget && !m.Search {
				fail("%s: %s: got a fixed %s %q, want a SEARCH (its values are open)", where, m.Name, d.Name, d.Value)
			}
		}
	}

	dashboards := rawResources(tpl, "AWS::CloudWatch::Dashboard")
	if len(dashboards) != 1 {
		fail("got %d dashboards, want 1", len(dashboards))
	}
	onDashboard := map[string]bool{}
	for _, id := range sortedKeys(dashboards) {
		p := props(dashboards[id])
		if got := text(p["DashboardName"]); got != "ref:AWS::StackName" {
			fail("dashboard %s: got DashboardName %q, want ref:AWS::StackName", id, got)
		}
		body, ok := p["DashboardBody"].(string)
		if !ok {
			fail("dashboard %s: got DashboardBody %s, want an Fn::Sub of a JSON string", id, jsonText(p["DashboardBody"]))
			continue
		}
		metrics, err := dashboardMetrics(expand(body))
		if err != nil {
			fail("dashboard %s: %v", id, err)
		}
		for _, m := range metrics {
			verify(fmt.Sprintf("dashboard %s: %s", id, m.Where), m)
			if m.Namespace == ours {
				onDashboard[m.Name] = true
			}
		}
	}
	for _, d := range telemetry.Catalogue {
		if len(dashboards) > 0 && !onDashboard[d.Name] {
			fail("dashboard: got no %s, want every metric of telemetry.Catalogue", d.Name)
		}
	}

	alarms := rawResources(tpl, "AWS::CloudWatch::Alarm")
	for _, id := range sortedKeys(alarms) {
		for _, m := range alarmMetrics(props(alarms[id])) {
			m.Namespace = expand(m.Namespace)
			for i := range m.Dims {
				m.Dims[i].Value = expand(m.Dims[i].Value)
			}
			verify("alarm "+id, m)
		}
	}
	return errors.Join(errs...)
}
