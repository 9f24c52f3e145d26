package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths from this package's directory.
const (
	repoRoot     = "../../.."
	templatePath = "../../../template.yaml"
	scriptPath   = "../../../localstack/init/create-table.sh"
)

// The functions and what each may do.
var (
	wantRoutes = map[string]string{
		"$connect":    "ConnectFunction",
		"$disconnect": "DisconnectFunction",
		"$default":    "MessageFunction",
	}
	// Whether each function may call the @connections management API.
	wantManageConnections = map[string]bool{
		"AuthorizerFunction": false,
		"ConnectFunction":    false,
		"DisconnectFunction": true,
		"MessageFunction":    true,
		"SweeperFunction":    true,
		"FanOutFunction":     true,
	}
	// Which function each may invoke (lambda:InvokeFunction), by the
	// resource as written: the fan-out function only, by the message
	// function and by itself (handing a batch's remainder on).
	wantInvoke = map[string]string{
		"MessageFunction": "getatt:FanOutFunction.Arn",
		"FanOutFunction":  "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:${AWS::StackName}-fanout",
	}
	// What each function may do on the table: "crud" is the
	// DynamoDBCrudPolicy on Table; otherwise the resource → actions of its
	// own statements, exactly.
	wantDynamoDB = map[string]map[string][]string{
		// The authorizer reads one token item per lookup.
		"AuthorizerFunction": {"getatt:Table.Arn": {"dynamodb:GetItem"}},
		"ConnectFunction":    {"crud": nil},
		"DisconnectFunction": {"crud": nil},
		"MessageFunction":    {"crud": nil},
		"SweeperFunction": {
			"${Table.Arn}/index/connections": {"dynamodb:Query"},
			"getatt:Table.Arn":               {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
		},
		// Forgetting a gone recipient: read its item, delete its items.
		"FanOutFunction": {"getatt:Table.Arn": {"dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"}},
	}
	wantEnvironment = map[string]string{
		"TABLE_NAME":          "ref:Table",
		"MANAGEMENT_ENDPOINT": "https://${WebSocketApi}.execute-api.${AWS::Region}.amazonaws.com/${StageName}",
		"MAX_MESSAGE_BYTES":   "ref:MaxMessageBytes",
		"PING_INTERVAL_MS":    "ref:PingIntervalMs",
		"FANOUT_LIMIT":        "ref:FanOutLimit",
		"SHARD_COUNT":         "ref:ShardCount",
		"LOG_LEVEL":           "ref:LogLevel",
		// The deadline the message function enforces and the sweeper too.
		"IDENTIFY_TIMEOUT_SECONDS": "ref:IdentifyTimeoutSeconds",
		// One metric namespace per stack (internal/telemetry).
		"METRICS_NAMESPACE": "Mastersocket/${AWS::StackName}",
	}
	wantParameters = map[string]string{
		"StageName":       "prod",
		"MaxMessageBytes": "32768",
		"PingIntervalMs":  "30000",
		"FanOutLimit":     "64",
		"ShardCount":      "4",
		"LogLevel":        "info",
		// The defaults: a sweep a minute, 10 s to IDENTIFY.
		"SweepSchedule":             "rate(1 minute)",
		"IdentifyTimeoutSeconds":    "10",
		"RouteThrottlingRateLimit":  "1000",
		"RouteThrottlingBurstLimit": "500",
		// Authenticate at the handshake unless told otherwise.
		"ConnectAuth":            "required",
		"AuthorizerCacheSeconds": "30",
		// Operations (docs/OPERATIONS.md).
		"LogRetentionDays":          "30",
		"AlarmTopicArn":             "",
		"FailedDeliveriesThreshold": "10",
		"ApiGatewayCloudWatchRole":  "existing",
	}
	wantTable = tableSpec{
		Billing: "PAY_PER_REQUEST",
		Hash:    "pk",
		Range:   "sk",
		Attrs:   map[string]string{"pk": "S", "sk": "S", "connShard": "S", "connectedAt": "N"},
		TTL:     "expiresAt",
		Indexes: []string{"connections: connShard HASH, connectedAt RANGE; INCLUDE serviceId group identifiedAt expiresAt"},
	}
)

// A check inspects one aspect of a template and returns every problem it
// finds, or nil. root is the repository root, which CodeUri paths are
// relative to. The real template and the broken copies go through the same
// checks.
type check func(tpl *Template, root string) error

var checks = []struct {
	name string
	fn   check
	// params overrides parameter defaults for the check: the template is
	// loaded with them (nil: the defaults).
	params map[string]string
}{
	{"parameters", checkParameters, nil},
	{"routes", checkRoutes, nil},
	{"stage", checkStage, nil},
	{"redeploy", checkRedeploy, nil},
	{"authorizer", checkAuthorizer, nil},
	{"code", checkCode, nil},
	{"runtime", checkRuntime, nil},
	{"policies", checkPolicies, nil},
	{"permissions", checkPermissions, nil},
	{"table", checkTable, nil},
	{"outputs", checkOutputs, nil},
	{"environment", checkEnvironment, nil},
	{"schedule", checkSchedule, nil},
	{"fanout", checkFanOut, nil},
	{"throttling", checkThrottling, nil},
	{"logs", checkLogs, nil},
	{"access-log", checkAccessLog, nil},
	{"cloudwatch-role", checkCloudWatchRole, map[string]string{"ApiGatewayCloudWatchRole": "create"}},
	{"alarms", checkAlarms, nil},
	{"alarm-actions", checkAlarmActions, map[string]string{"AlarmTopicArn": testTopicArn}},
	{"metrics", checkMetrics, nil},
}

func checkByName(t *testing.T, name string) (check, map[string]string) {
	t.Helper()
	for _, c := range checks {
		if c.name == name {
			return c.fn, c.params
		}
	}
	t.Fatalf("no check %q", name)
	return nil, nil
}

func loadTemplate(t *testing.T) *Template {
	t.Helper()
	tpl, err := Load(templatePath)
	if err != nil {
		t.Fatalf("Load(%s): %v", templatePath, err)
	}
	return tpl
}

func TestTemplate(t *testing.T) {
	tpl := loadTemplate(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			tpl := tpl
			if c.params != nil {
				var err error
				if tpl, err = LoadWithParameters(templatePath, c.params); err != nil {
					t.Fatalf("LoadWithParameters(%s, %v): %v", templatePath, c.params, err)
				}
			}
			if err := c.fn(tpl, repoRoot); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCreateTableScript(t *testing.T) {
	tpl := loadTemplate(t)
	st, err := os.Stat(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o111 == 0 {
		t.Errorf("%s: got mode %v, want executable (LocalStack runs only executable init scripts)", scriptPath, st.Mode().Perm())
	}
	data, err := os.ReadFile(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "#!") {
		t.Errorf("%s: got no shebang, want one (LocalStack needs it)", scriptPath)
	}
	if err := checkCreateTable(tpl, string(data)); err != nil {
		t.Error(err)
	}
}

// TestChecksCatchBrokenTemplates breaks template.yaml in one place at a time
// and expects the check concerned to say so: checks that cannot fail prove
// nothing.
func TestChecksCatchBrokenTemplates(t *testing.T) {
	orig, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	const manageARN = `"arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${WebSocketApi}/${StageName}/*/@connections/*"`
	const stageHead = "  Stage:\n    Type: AWS::ApiGatewayV2::Stage\n    Properties:\n      ApiId: !Ref WebSocketApi\n      StageName: !Ref StageName\n"
	tests := []struct {
		name     string
		old, new string // the first occurrence of old is replaced by new
		check    string
		wantErr  string // a part of the error the check must return
	}{
		{
			name: "$default routed to ConnectFunction",
			old:  "functions/${MessageFunction.Arn}/invocations", new: "functions/${ConnectFunction.Arn}/invocations",
			check: "routes", wantErr: "route $default: got function ConnectFunction, want MessageFunction",
		},
		{
			name: "$disconnect route renamed",
			old:  "RouteKey: $disconnect", new: "RouteKey: disconnect",
			check: "routes", wantErr: "want route $disconnect",
		},
		{
			name: "$default without a route response selection expression",
			old:  "      RouteResponseSelectionExpression: $default\n", new: "",
			check: "routes", wantErr: "RouteResponseSelectionExpression",
		},
		{
			name: "route selection on another field",
			old:  `RouteSelectionExpression: "$request.body.action"`, new: `RouteSelectionExpression: "$request.body.op"`,
			check: "routes", wantErr: `want "$request.body.action"`,
		},
		{
			name: "AutoDeploy off",
			old:  "AutoDeploy: true", new: "AutoDeploy: false",
			check: "redeploy", wantErr: "got AutoDeploy false, want true",
		},
		{
			name: "the old fixed deployment",
			old:  stageHead + "      AutoDeploy: true\n",
			new: "  Deployment:\n" +
				"    Type: AWS::ApiGatewayV2::Deployment\n" +
				"    DependsOn: [ConnectRoute, DisconnectRoute, DefaultRoute, DefaultRouteResponse]\n" +
				"    Properties:\n" +
				"      ApiId: !Ref WebSocketApi\n\n" +
				stageHead + "      DeploymentId: !Ref Deployment\n",
			check: "redeploy", wantErr: "stage Stage: got DeploymentId \"ref:Deployment\" and AutoDeploy false",
		},
		{
			name: "a deployment beside AutoDeploy",
			old:  stageHead,
			new: "  Deployment:\n" +
				"    Type: AWS::ApiGatewayV2::Deployment\n" +
				"    Properties:\n" +
				"      ApiId: !Ref WebSocketApi\n\n" + stageHead,
			check: "redeploy", wantErr: "got AWS::ApiGatewayV2::Deployment Deployment",
		},
		{
			name: "ConnectAuth off by default",
			old:  "Default: required", new: `Default: "off"`,
			check: "authorizer", wantErr: `parameter ConnectAuth: got default "off", want "required"`,
		},
		{
			name: "authorizer permission for every authorizer",
			old:  "/authorizers/${Authorizer}", new: "/authorizers/*",
			check: "authorizer", wantErr: "permission AuthorizerPermission: got SourceArn",
		},
		{
			name: "authorizer permission for any API",
			old:  "${WebSocketApi}/authorizers/", new: "*/authorizers/",
			check: "authorizer", wantErr: "permission AuthorizerPermission: got SourceArn",
		},
		{
			name: "authorizer permission for a route",
			old:  "${WebSocketApi}/authorizers/${Authorizer}", new: "${WebSocketApi}/*/$connect",
			check: "authorizer", wantErr: "permission AuthorizerPermission: got SourceArn",
		},
		{
			name: "no authorizer permission",
			old:  "      FunctionName: !Ref AuthorizerFunction\n", new: "      FunctionName: !Ref ConnectFunction\n",
			check: "authorizer", wantErr: "function AuthorizerFunction: got 0 invoke permissions, want 1",
		},
		{
			name: "authorizer function may write the table",
			old:  "Action: dynamodb:GetItem", new: "Action: [dynamodb:GetItem, dynamodb:PutItem]",
			check: "authorizer", wantErr: `function AuthorizerFunction: got Action "dynamodb:PutItem"`,
		},
		{
			name:  "authorizer function may read every table",
			old:   "              Action: dynamodb:GetItem\n              Resource: !GetAtt Table.Arn",
			new:   "              Action: dynamodb:GetItem\n              Resource: \"*\"",
			check: "authorizer", wantErr: `function AuthorizerFunction: got Resource "*"`,
		},
		{
			name:  "authorizer function with CRUD on the table",
			old:   "          AUTH_CACHE_SECONDS: !Ref AuthorizerCacheSeconds\n      Policies:\n",
			new:   "          AUTH_CACHE_SECONDS: !Ref AuthorizerCacheSeconds\n      Policies:\n        - DynamoDBCrudPolicy:\n            TableName: !Ref Table\n",
			check: "authorizer", wantErr: "function AuthorizerFunction: got policy template DynamoDBCrudPolicy",
		},
		{
			name:  "authorizer function may manage connections",
			old:   "              Action: dynamodb:GetItem\n",
			new:   "              Action: [dynamodb:GetItem, execute-api:ManageConnections]\n",
			check: "authorizer", wantErr: `function AuthorizerFunction: got Action "execute-api:ManageConnections"`,
		},
		{
			name: "an identity source that refuses browsers",
			old:  "      AuthorizerType: REQUEST\n", new: "      AuthorizerType: REQUEST\n      IdentitySource: [route.request.header.Authorization]\n",
			check: "authorizer", wantErr: "got identity sources [route.request.header.Authorization], want none",
		},
		{
			name: "AUTH_CACHE_SECONDS fixed instead of the parameter",
			old:  "AUTH_CACHE_SECONDS: !Ref AuthorizerCacheSeconds", new: "AUTH_CACHE_SECONDS: 300",
			check: "authorizer", wantErr: `function AuthorizerFunction: got AUTH_CACHE_SECONDS="300", want "ref:AuthorizerCacheSeconds"`,
		},
		{
			name: "authorizer cache setting given to every function",
			old:  "        LOG_LEVEL: !Ref LogLevel\n", new: "        LOG_LEVEL: !Ref LogLevel\n        AUTH_CACHE_SECONDS: !Ref AuthorizerCacheSeconds\n",
			check: "authorizer", wantErr: "function ConnectFunction: got AUTH_CACHE_SECONDS",
		},
		{
			name: "ManageConnections on every resource",
			old:  "Resource: !Sub " + manageARN, new: `Resource: "*"`,
			check: "policies", wantErr: `DisconnectFunction: got Resource "*"`,
		},
		{
			name: "ManageConnections on every stage",
			old:  "${WebSocketApi}/${StageName}/*/@connections/*", new: "${WebSocketApi}/*/*/@connections/*",
			check: "policies", wantErr: "DisconnectFunction: got Resource",
		},
		{
			name: "ManageConnections on every API",
			old:  "${WebSocketApi}/${StageName}/*/@connections/*", new: "*/${StageName}/*/@connections/*",
			check: "policies", wantErr: "DisconnectFunction: got Resource",
		},
		{
			name: "every execute-api action",
			old:  "Action: execute-api:ManageConnections", new: `Action: "execute-api:*"`,
			check: "policies", wantErr: `got Action "execute-api:*"`,
		},
		{
			name: "ConnectFunction may manage connections",
			old:  "      LogGroup: !Ref ConnectLogGroup\n      Policies:\n",
			new: "      LogGroup: !Ref ConnectLogGroup\n      Policies:\n" +
				"        - Statement:\n" +
				"            - Effect: Allow\n" +
				"              Action: execute-api:ManageConnections\n" +
				"              Resource: !Sub " + manageARN + "\n",
			check: "policies", wantErr: "ConnectFunction: got ManageConnections true, want false",
		},
		{
			name: "DynamoDB CRUD on every table",
			old:  "TableName: !Ref Table", new: `TableName: "*"`,
			check: "policies", wantErr: `ConnectFunction: got DynamoDBCrudPolicy TableName "*", want "ref:Table"`,
		},
		{
			name: "a managed policy",
			old:  "      Policies:\n        - DynamoDBCrudPolicy:", new: "      Policies:\n        - AmazonDynamoDBFullAccess\n        - DynamoDBCrudPolicy:",
			check: "policies", wantErr: `got managed policy "AmazonDynamoDBFullAccess"`,
		},
		{
			name: "another SAM policy template",
			old:  "      Policies:\n        - DynamoDBCrudPolicy:", new: "      Policies:\n        - DynamoDBReadPolicy:\n            TableName: \"*\"\n        - DynamoDBCrudPolicy:",
			check: "policies", wantErr: "got policy template DynamoDBReadPolicy",
		},
		{
			name: "$disconnect permission names $connect",
			old:  "${WebSocketApi}/*/$disconnect\"", new: "${WebSocketApi}/*/$connect\"",
			check: "permissions", wantErr: "DisconnectPermission: got SourceArn",
		},
		{
			name: "$default permission on every route",
			old:  "${WebSocketApi}/*/$default\"", new: "${WebSocketApi}/*/*\"",
			check: "permissions", wantErr: "MessagePermission: got SourceArn",
		},
		{
			name: "permission for the wrong principal",
			old:  "Principal: apigateway.amazonaws.com", new: "Principal: lambda.amazonaws.com",
			check: "permissions", wantErr: `got Principal "lambda.amazonaws.com"`,
		},
		{
			name: "TTL on another attribute",
			old:  "AttributeName: expiresAt", new: "AttributeName: ttl",
			check: "table", wantErr: `got TTL attribute "ttl", want "expiresAt"`,
		},
		{
			name: "TTL disabled",
			old:  "AttributeName: expiresAt\n        Enabled: true", new: "AttributeName: expiresAt\n        Enabled: false",
			check: "table", wantErr: "got TTL enabled false, want true",
		},
		{
			name: "PITR off",
			old:  "PointInTimeRecoveryEnabled: true", new: "PointInTimeRecoveryEnabled: false",
			check: "table", wantErr: "point-in-time recovery",
		},
		{
			name: "SSE off",
			old:  "SSESpecification:\n        SSEEnabled: true", new: "SSESpecification:\n        SSEEnabled: false",
			check: "table", wantErr: "SSE",
		},
		{
			name: "sweeper may scan the table",
			old:  "Action: dynamodb:Query", new: "Action: [dynamodb:Query, dynamodb:Scan]",
			check: "policies", wantErr: "function SweeperFunction: got DynamoDB grants",
		},
		{
			name: "sweeper may write anything",
			old:  "                - dynamodb:GetItem\n", new: "                - dynamodb:GetItem\n                - dynamodb:*\n",
			check: "policies", wantErr: `got Action "dynamodb:*"`,
		},
		{
			name: "sweep on a cron schedule",
			old:  "Default: rate(1 minute)", new: "Default: cron(0 * * * ? *)",
			check: "schedule", wantErr: "want a rate of 1 minute",
		},
		{
			name: "failed sweeps retried",
			old:  "MaximumRetryAttempts: 0\n        MaximumEventAgeInSeconds: 60", new: "MaximumRetryAttempts: 2\n        MaximumEventAgeInSeconds: 60",
			check: "schedule", wantErr: "MaximumRetryAttempts 0",
		},
		{
			name: "failed fan-out batches retried",
			old:  "MaximumRetryAttempts: 0\n        MaximumEventAgeInSeconds: 3600", new: "MaximumRetryAttempts: 2\n        MaximumEventAgeInSeconds: 3600",
			check: "fanout", wantErr: "MaximumRetryAttempts 0",
		},
		{
			name: "failed fan-out batches lost",
			old:  "        DestinationConfig:\n          OnFailure:\n            Type: SQS\n            Destination: !GetAtt FanOutFailures.Arn\n", new: "",
			check: "fanout", wantErr: "OnFailure",
		},
		{
			name: "any function invoked",
			old:  "Resource: !GetAtt FanOutFunction.Arn", new: "Resource: \"*\"",
			check: "policies", wantErr: "MessageFunction: got lambda:InvokeFunction on [*]",
		},
		{
			name: "fan-out name apart from its policy",
			old:  "FunctionName: !Sub \"${AWS::StackName}-fanout\"", new: "FunctionName: !Sub \"${AWS::StackName}-fan\"",
			check: "fanout", wantErr: "FunctionName",
		},
		{
			name: "no route throttling",
			old:  "      DefaultRouteSettings:\n        ThrottlingRateLimit: !Ref RouteThrottlingRateLimit\n        ThrottlingBurstLimit: !Ref RouteThrottlingBurstLimit\n", new: "",
			check: "throttling", wantErr: "DefaultRouteSettings.ThrottlingRateLimit",
		},
		{
			name: "burst limit without a value",
			old:  "        ThrottlingBurstLimit: !Ref RouteThrottlingBurstLimit\n", new: "",
			check: "throttling", wantErr: "DefaultRouteSettings.ThrottlingBurstLimit",
		},
		{
			name: "connections index projecting everything",
			old:  "ProjectionType: INCLUDE\n            NonKeyAttributes: [serviceId, group, identifiedAt, expiresAt]", new: "ProjectionType: ALL",
			check: "table", wantErr: "got secondary indexes",
		},
		{
			name: "connections index without its range key",
			old:  "            - AttributeName: connectedAt\n              KeyType: RANGE\n", new: "",
			check: "table", wantErr: "got secondary indexes",
		},
		{
			name: "provisioned billing",
			old:  "BillingMode: PAY_PER_REQUEST", new: "BillingMode: PROVISIONED",
			check: "table", wantErr: `got billing mode "PROVISIONED", want "PAY_PER_REQUEST"`,
		},
		{
			name: "runtime provided.al2",
			old:  "Runtime: provided.al2023", new: "Runtime: provided.al2",
			check: "runtime", wantErr: `got runtime "provided.al2", want "provided.al2023"`,
		},
		{
			name: "x86_64",
			old:  "Architectures: [arm64]", new: "Architectures: [x86_64]",
			check: "runtime", wantErr: "got architectures [x86_64], want [arm64]",
		},
		{
			name: "CodeUri without a main package",
			old:  "CodeUri: functions/message", new: "CodeUri: internal/protocol",
			check: "code", wantErr: "MessageFunction",
		},
		{
			name: "CodeUri outside the repository",
			old:  "CodeUri: functions/message", new: "CodeUri: ../message",
			check: "code", wantErr: "MessageFunction",
		},
		{
			name: "LOG_LEVEL missing",
			old:  "        LOG_LEVEL: !Ref LogLevel\n", new: "",
			check: "environment", wantErr: "LOG_LEVEL",
		},
		{
			name: "WebSocketURL over https",
			old:  `Value: !Sub "wss://`, new: `Value: !Sub "https://`,
			check: "outputs", wantErr: "wss://",
		},
		{
			name: "MaxMessageBytes above API Gateway's limit",
			old:  "MaxValue: 131072", new: "MaxValue: 1048576",
			check: "parameters", wantErr: "MaxMessageBytes",
		},
		// ------------------------------------------------- operations
		{
			name: "a function's log group kept for ever",
			old:  "      RetentionInDays: !Ref LogRetentionDays\n", new: "",
			check: "logs", wantErr: `log group ConnectLogGroup: got RetentionInDays ""`,
		},
		{
			name:  "the access log kept for ever",
			old:   "      LogGroupName: !Sub \"/aws/apigateway/${AWS::StackName}/access\"\n      RetentionInDays: !Ref LogRetentionDays\n",
			new:   "      LogGroupName: !Sub \"/aws/apigateway/${AWS::StackName}/access\"\n",
			check: "logs", wantErr: `log group AccessLogGroup: got RetentionInDays ""`,
		},
		{
			name: "logs kept ten years by default",
			old:  "    Default: 30\n    # The values both", new: "    Default: 3653\n    # The values both",
			check: "logs", wantErr: `parameter LogRetentionDays: got default "3653"`,
		},
		{
			name: "a retention CloudWatch Logs refuses",
			old:  "AllowedValues: [1, 3, 5,", new: "AllowedValues: [1, 2, 3, 5,",
			check: "logs", wantErr: "parameter LogRetentionDays: got allowed values",
		},
		{
			name: "a function without LoggingConfig",
			old:  "      LoggingConfig:\n        LogGroup: !Ref MessageLogGroup\n", new: "",
			check: "logs", wantErr: "function MessageFunction: got no LoggingConfig",
		},
		{
			name: "a function logging to a group the stack does not manage",
			old:  "LogGroup: !Ref FanOutLogGroup", new: "LogGroup: /aws/lambda/fanout",
			check: "logs", wantErr: `function FanOutFunction: got LoggingConfig.LogGroup "/aws/lambda/fanout"`,
		},
		{
			name: "two functions in one log group",
			old:  "LogGroup: !Ref DisconnectLogGroup", new: "LogGroup: !Ref ConnectLogGroup",
			check: "logs", wantErr: "log group ConnectLogGroup: got functions ConnectFunction and DisconnectFunction",
		},
		{
			name: "Lambda's JSON log format",
			old:  "        LogGroup: !Ref SweeperLogGroup\n", new: "        LogGroup: !Ref SweeperLogGroup\n        LogFormat: JSON\n",
			check: "logs", wantErr: `function SweeperFunction: got LogFormat "JSON"`,
		},
		{
			name:  "the authorizer's log group without its condition",
			old:   "  AuthorizerLogGroup:\n    Type: AWS::Logs::LogGroup\n    Condition: ConnectAuthRequired\n",
			new:   "  AuthorizerLogGroup:\n    Type: AWS::Logs::LogGroup\n",
			check: "logs", wantErr: `log group AuthorizerLogGroup: got Condition "", want "ConnectAuthRequired"`,
		},
		{
			name:  "no access log",
			old:   "      AccessLogSettings:\n        DestinationArn: !Sub \"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${AccessLogGroup}\"\n        Format: >-\n",
			new:   "      Tags:\n        format: >-\n",
			check: "access-log", wantErr: "stage Stage: got no AccessLogSettings",
		},
		{
			name: "an access log that is not JSON",
			old:  "        Format: >-\n          {", new: "        Format: >-\n          $context.requestId {",
			check: "access-log", wantErr: "want one JSON object",
		},
		{
			name: "an access log without the connection id",
			old:  "\"connectionId\":\"$context.connectionId\",\n          ", new: "",
			check: "access-log", wantErr: `access log field connectionId: got "", want "$context.connectionId"`,
		},
		{
			// $context.integrationErrorMessage is an HTTP API's variable, not a
			// WebSocket API's.
			name: "the integration error of another variable",
			old:  "$context.integration.error", new: "$context.integrationErrorMessage",
			check: "access-log", wantErr: "access log field integrationError",
		},
		{
			name: "an access log to a group the stack does not manage",
			old:  "log-group:${AccessLogGroup}\"", new: "log-group:elsewhere\"",
			check: "access-log", wantErr: "stage Stage: got DestinationArn",
		},
		{
			name: "an access log destination ending in :*",
			old:  "DestinationArn: !Sub \"arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:${AccessLogGroup}\"", new: "DestinationArn: !GetAtt AccessLogGroup.Arn",
			check: "access-log", wantErr: `stage Stage: got DestinationArn "getatt:AccessLogGroup.Arn"`,
		},
		{
			name: "the region's CloudWatch role replaced by default",
			old:  "    Default: existing\n", new: "    Default: create\n",
			check: "cloudwatch-role", wantErr: `parameter ApiGatewayCloudWatchRole: got default "create"`,
		},
		{
			name:  "the region's account setting deleted with the stack",
			old:   "    Condition: CreateApiGatewayCloudWatchRole\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n    Properties:\n      CloudWatchRoleArn",
			new:   "    Condition: CreateApiGatewayCloudWatchRole\n    UpdateReplacePolicy: Retain\n    Properties:\n      CloudWatchRoleArn",
			check: "cloudwatch-role", wantErr: `account setting ApiGatewayAccount: got DeletionPolicy ""`,
		},
		{
			name:  "the region's CloudWatch role deleted with the stack",
			old:   "    Condition: CreateApiGatewayCloudWatchRole\n    DeletionPolicy: Retain\n    UpdateReplacePolicy: Retain\n    Properties:\n      AssumeRolePolicyDocument",
			new:   "    Condition: CreateApiGatewayCloudWatchRole\n    Properties:\n      AssumeRolePolicyDocument",
			check: "cloudwatch-role", wantErr: `role ApiGatewayCloudWatchLogsRole: got DeletionPolicy ""`,
		},
		{
			name:  "a stage that does not wait for the account setting",
			old:   "      Description: !If\n        - CreateApiGatewayCloudWatchRole\n        - !Sub \"mastersocket stage (access log role set by ${ApiGatewayAccount})\"\n        - mastersocket stage\n",
			new:   "      Description: mastersocket stage\n",
			check: "cloudwatch-role", wantErr: "stage Stage: got no reference to ApiGatewayAccount",
		},
		{
			name: "no error alarm for the sweeper",
			old:  "          Value: !Ref SweeperFunction\n      Statistic", new: "          Value: !Ref ConnectFunction\n      Statistic",
			check: "alarms", wantErr: "got no alarm on AWS/Lambda Errors FunctionName=ref:SweeperFunction",
		},
		{
			name: "throttles of the message function unwatched",
			old:  "                  Value: !Ref MessageFunction\n", new: "                  Value: !Ref ConnectFunction\n",
			check: "alarms", wantErr: "got no alarm on AWS/Lambda Throttles FunctionName=ref:MessageFunction",
		},
		{
			name: "integration latency alarm at the limit itself",
			old:  "Threshold: 25000", new: "Threshold: 29000",
			check: "alarms", wantErr: "alarm IntegrationLatencyAlarm: got IntegrationLatency Maximum above 29000",
		},
		{
			name: "no data as a breach",
			old:  "TreatMissingData: notBreaching", new: "TreatMissingData: breaching",
			check: "alarms", wantErr: `alarm ConnectErrorsAlarm: got TreatMissingData "breaching"`,
		},
		{
			name: "the failure queue's alarm cleared by silence",
			old:  "TreatMissingData: ignore", new: "TreatMissingData: notBreaching",
			check: "alarms", wantErr: `alarm FanOutFailuresAlarm: got TreatMissingData "notBreaching", want ignore`,
		},
		{
			name: "failed deliveries threshold fixed",
			old:  "Threshold: !Ref FailedDeliveriesThreshold", new: "Threshold: 100",
			check: "alarms", wantErr: `alarm FailedDeliveriesAlarm: got Threshold "100"`,
		},
		{
			name: "alarm actions without a topic",
			old:  "      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n", new: "      AlarmActions: [!Ref AlarmTopicArn]\n",
			check: "alarms", wantErr: "alarm ConnectErrorsAlarm: got AlarmActions",
		},
		{
			name: "an alarm that never says OK",
			old:  "      OKActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n", new: "",
			check: "alarm-actions", wantErr: "alarm ConnectErrorsAlarm: got OKActions [] with AlarmTopicArn set",
		},
		{
			name: "an alarm notifying another topic",
			old:  "      AlarmActions: !If [HasAlarmTopic, [!Ref AlarmTopicArn], !Ref AWS::NoValue]\n", new: "      AlarmActions: [\"arn:aws:sns:us-east-1:123456789012:other\"]\n",
			check: "alarm-actions", wantErr: "alarm ConnectErrorsAlarm: got AlarmActions [arn:aws:sns:us-east-1:123456789012:other]",
		},
		{
			name: "messages searched without their target",
			old:  ",Stage,Op,Target} ", new: ",Stage,Op} ",
			check: "metrics", wantErr: "Messages: got dimensions [Op Stage], want exactly [Op Stage Target]",
		},
		{
			name: "a metric the functions do not emit",
			old:  `"DeliveriesGone", "Stage"`, new: `"DeliveriesLost", "Stage"`,
			check: "metrics", wantErr: `got metric "DeliveriesLost", want one of telemetry.Catalogue`,
		},
		{
			name:  "a catalogue metric missing from the dashboard",
			old:   `["Mastersocket/${AWS::StackName}", "ConnectionsLive", "Stage", "${StageName}"]`,
			new:   `["AWS/SQS", "NumberOfMessagesSent", "QueueName", "${FanOutFailures.QueueName}"]`,
			check: "metrics", wantErr: "dashboard: got no ConnectionsLive",
		},
		{
			name:  "fan-out duration without its target",
			old:   `"FanOutDuration", "Stage", "${StageName}", "Target", "GROUP", {"stat": "Average"`,
			new:   `"FanOutDuration", "Stage", "${StageName}", {"stat": "Average"`,
			check: "metrics", wantErr: "FanOutDuration: got dimensions [Stage], want exactly [Stage Target]",
		},
		{
			name:  "an open dimension fixed on the dashboard",
			old:   `{"expression": "SEARCH('{\"Mastersocket/${AWS::StackName}\",Stage,Outcome} Stage=\"${StageName}\" MetricName=\"Identifies\"', 'Sum', 60)", "id": "identifies"}`,
			new:   `"Mastersocket/${AWS::StackName}", "Identifies", "Stage", "${StageName}", "Outcome", "ok"`,
			check: "metrics", wantErr: `Identifies: got a fixed Outcome "ok"`,
		},
		{
			name: "a metric of another namespace",
			old:  `"Mastersocket/${AWS::StackName}", "ConnectionsOpened"`, new: `"Mastersocket", "ConnectionsOpened"`,
			check: "metrics", wantErr: `ConnectionsOpened: got namespace "Mastersocket", want "Mastersocket/stack"`,
		},
		{
			name: "functions emitting to another namespace",
			old:  `METRICS_NAMESPACE: !Sub "Mastersocket/${AWS::StackName}"`, new: `METRICS_NAMESPACE: !Sub "Bus/${AWS::StackName}"`,
			check: "metrics", wantErr: `got namespace "Mastersocket/stack", want "Bus/stack"`,
		},
		{
			name:  "an alarm on a metric without its Stage",
			old:   "      MetricName: DeliveriesThrottled\n      Dimensions:\n        - Name: Stage\n          Value: !Ref StageName\n",
			new:   "      MetricName: DeliveriesThrottled\n",
			check: "metrics", wantErr: "alarm DeliveriesThrottledAlarm: DeliveriesThrottled: got dimensions [], want exactly [Stage]",
		},
		{
			name:  "an alarm on another stage",
			old:   "      MetricName: DeliveriesFailed\n      Dimensions:\n        - Name: Stage\n          Value: !Ref StageName\n",
			new:   "      MetricName: DeliveriesFailed\n      Dimensions:\n        - Name: Stage\n          Value: dev\n",
			check: "metrics", wantErr: `alarm FailedDeliveriesAlarm: DeliveriesFailed: got Stage "dev", want the stage's name "prod"`,
		},
		{
			name: "an API Gateway metric without its stage",
			old:  `"ConnectCount", "ApiId", "${WebSocketApi}", "Stage", "${StageName}"`, new: `"ConnectCount", "ApiId", "${WebSocketApi}"`,
			check: "metrics", wantErr: "AWS/ApiGateway ConnectCount: got dimensions [ApiId], want [ApiId Stage]",
		},
		{
			name: "a dashboard body that is not JSON",
			old:  `"view": "timeSeries", "stat": "Sum", "period": 60,`, new: `"view": "timeSeries", "stat": "Sum", "period": 60,,`,
			check: "metrics", wantErr: "DashboardBody is not JSON",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(orig), tc.old) {
				t.Fatalf("template.yaml no longer contains %q: update this test case", tc.old)
			}
			broken := strings.Replace(string(orig), tc.old, tc.new, 1)
			path := filepath.Join(t.TempDir(), "template.yaml")
			if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			fn, params := checkByName(t, tc.check)
			tpl, err := LoadWithParameters(path, params)
			if err != nil {
				t.Fatalf("Load(broken template): %v", err)
			}
			err = fn(tpl, repoRoot)
			switch {
			case err == nil:
				t.Errorf("check %s: got no error, want one containing %q", tc.check, tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("check %s: got error %q, want one containing %q", tc.check, err, tc.wantErr)
			}
		})
	}
}

func TestChecksCatchBrokenScripts(t *testing.T) {
	tpl := loadTemplate(t)
	data, err := os.ReadFile(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	orig := string(data)
	tests := []struct {
		name, old, new, wantErr string
	}{
		{"hash key id", "AttributeName=pk,KeyType=HASH", "AttributeName=id,KeyType=HASH", `got hash key "id", want "pk"`},
		{"no range key", " AttributeName=sk,KeyType=RANGE", "", `got range key "", want "sk"`},
		{"numeric sort key", "AttributeName=sk,AttributeType=S", "AttributeName=sk,AttributeType=N", "got attributes"},
		{"provisioned", "--billing-mode PAY_PER_REQUEST", "--billing-mode PROVISIONED", `got billing mode "PROVISIONED", want "PAY_PER_REQUEST"`},
		{"TTL on ttl", "AttributeName=expiresAt", "AttributeName=ttl", `got TTL attribute "ttl", want "expiresAt"`},
		{"TTL disabled", "Enabled=true", "Enabled=false", `got TTL attribute ""`},
		{"no TTL", "awslocal dynamodb update-time-to-live", "awslocal dynamodb describe-time-to-live", "update-time-to-live"},
		{"no create-table", "awslocal dynamodb create-table", "awslocal dynamodb describe-table", "create-table"},
		{"no connections index", `[{"IndexName":"connections"`, `[{"IndexName":"conns"`, "got secondary indexes"},
		{"index projection without expiresAt", `,"expiresAt"]`, `]`, "got secondary indexes"},
		{"fixed table name", `--table-name "$TABLE_NAME" \` + "\n  --attribute", `--table-name other \` + "\n  --attribute", "TABLE_NAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(orig, tc.old) {
				t.Fatalf("create-table.sh no longer contains %q: update this test case", tc.old)
			}
			err := checkCreateTable(tpl, strings.Replace(orig, tc.old, tc.new, 1))
			switch {
			case err == nil:
				t.Errorf("got no error, want one containing %q", tc.wantErr)
			case !strings.Contains(err.Error(), tc.wantErr):
				t.Errorf("got error %q, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// ------------------------------------------------------------------ checks

func checkParameters(tpl *Template, _ string) error {
	var errs []error
	got := tpl.ParameterDefaults()
	for name, want := range wantParameters {
		if got[name] != want {
			errs = append(errs, fmt.Errorf("parameter %s: got default %q, want %q", name, got[name], want))
		}
	}
	p := tpl.CFN.Parameters["MaxMessageBytes"]
	if p.MinValue == nil || *p.MinValue != 1 || p.MaxValue == nil || *p.MaxValue != 131072 {
		errs = append(errs, fmt.Errorf("parameter MaxMessageBytes: got range %v..%v, want 1..131072 (API Gateway's message limit)", deref(p.MinValue), deref(p.MaxValue)))
	}
	allowed := fmt.Sprint(tpl.CFN.Parameters["LogLevel"].AllowedValues)
	if want := "[debug info warn error]"; allowed != want {
		errs = append(errs, fmt.Errorf("parameter LogLevel: got allowed values %s, want %s", allowed, want))
	}
	return errors.Join(errs...)
}

func deref(p *float64) any {
	if p == nil {
		return "unset"
	}
	return *p
}

func checkRoutes(tpl *Template, _ string) error {
	var errs []error
	if got, want := tpl.RouteSelectionExpression(), "$request.body.action"; got != want {
		errs = append(errs, fmt.Errorf("route selection expression: got %q, want %q", got, want))
	}
	routes, err := tpl.Routes()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	seen := map[string]bool{}
	for _, r := range routes {
		seen[r.Key] = true
		want, ok := wantRoutes[r.Key]
		if !ok {
			errs = append(errs, fmt.Errorf("got route %s (%s), want only %v", r.Key, r.LogicalID, sortedKeys(wantRoutes)))
			continue
		}
		if r.Function != want {
			errs = append(errs, fmt.Errorf("route %s: got function %s, want %s", r.Key, r.Function, want))
		}
		if r.IntegrationType != "AWS_PROXY" {
			errs = append(errs, fmt.Errorf("route %s: got integration type %q, want AWS_PROXY", r.Key, r.IntegrationType))
		}
		// Only $default answers the client (PONG, IDENTIFY's answer, ERROR).
		if want := r.Key == "$default"; r.HasRouteResponse != want {
			errs = append(errs, fmt.Errorf("route %s: got route response %v, want %v", r.Key, r.HasRouteResponse, want))
		}
		if r.HasRouteResponse {
			if e := tpl.CFN.GetAllApiGatewayV2RouteResources()[r.LogicalID].RouteResponseSelectionExpression; *e != "$default" {
				errs = append(errs, fmt.Errorf("route %s: got RouteResponseSelectionExpression %q, want $default", r.Key, *e))
			}
			for id, rr := range tpl.CFN.GetAllApiGatewayV2RouteResponseResources() {
				if rr.RouteId == RefPrefix+r.LogicalID && rr.RouteResponseKey != "$default" {
					errs = append(errs, fmt.Errorf("route response %s: got RouteResponseKey %q, want $default", id, rr.RouteResponseKey))
				}
			}
		}
	}
	for _, key := range sortedKeys(wantRoutes) {
		if !seen[key] {
			errs = append(errs, fmt.Errorf("got routes %v, want route %s", routeKeys(routes), key))
		}
	}
	return errors.Join(errs...)
}

// checkStage checks that the WebSocket API has one stage, named by the
// StageName parameter.
func checkStage(tpl *Template, _ string) error {
	api, err := tpl.WebSocketAPI()
	if err != nil {
		return err
	}
	stages := tpl.CFN.GetAllApiGatewayV2StageResources()
	if len(stages) != 1 {
		return fmt.Errorf("got %d stages %v, want 1", len(stages), sortedKeys(stages))
	}
	var errs []error
	for id, st := range stages {
		if st.ApiId != RefPrefix+api {
			errs = append(errs, fmt.Errorf("stage %s: got ApiId %q, want %q", id, st.ApiId, RefPrefix+api))
		}
		if st.StageName != "ref:StageName" {
			errs = append(errs, fmt.Errorf("stage %s: got StageName %q, want ref:StageName", id, st.StageName))
		}
	}
	return errors.Join(errs...)
}

// checkRedeploy checks that the stage serves the routes of the last stack
// update: AutoDeploy on, no fixed DeploymentId, and no
// AWS::ApiGatewayV2::Deployment, which CloudFormation creates once and
// never again, so that a change of routes (ConnectAuth switches the
// $connect route's authorizer) would not reach the stage.
func checkRedeploy(tpl *Template, _ string) error {
	var errs []error
	deployments := tpl.CFN.GetAllApiGatewayV2DeploymentResources()
	for _, id := range sortedKeys(deployments) {
		errs = append(errs, fmt.Errorf("got AWS::ApiGatewayV2::Deployment %s, want none: it snapshots the routes once, and the stage would keep serving them after they change", id))
	}
	stages := tpl.CFN.GetAllApiGatewayV2StageResources()
	for _, id := range sortedKeys(stages) {
		st := stages[id]
		auto := st.AutoDeploy != nil && *st.AutoDeploy
		switch {
		case st.DeploymentId != nil && !auto:
			errs = append(errs, fmt.Errorf("stage %s: got DeploymentId %q and AutoDeploy false, want AutoDeploy true: a fixed deployment keeps serving the old routes", id, *st.DeploymentId))
		case st.DeploymentId != nil:
			errs = append(errs, fmt.Errorf("stage %s: got DeploymentId %q, want none with AutoDeploy", id, *st.DeploymentId))
		case !auto:
			errs = append(errs, fmt.Errorf("stage %s: got AutoDeploy false, want true (the stage would serve no routes, or old ones)", id))
		}
	}
	return errors.Join(errs...)
}

// The $connect authorizer's function, and the only resource it may read.
const (
	authorizerFunction = "AuthorizerFunction"
	authorizerTable    = "getatt:Table.Arn"
)

// checkAuthorizer checks the $connect authorizer: ConnectAuth defaults to
// required; $connect alone has an authorizer, of type REQUEST, with no
// identity source (the token comes in a header or in the subprotocol, and
// API Gateway refuses a handshake that lacks a listed source) and no result
// cache (WebSocket APIs have none); its function may only GetItem on the
// table, alone gets AUTH_CACHE_SECONDS from AuthorizerCacheSeconds, and may
// be invoked by API Gateway only as this API's authorizer.
func checkAuthorizer(tpl *Template, _ string) error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	p, ok := tpl.CFN.Parameters["ConnectAuth"]
	if !ok {
		fail("got no parameter ConnectAuth, want one")
	}
	if got := tpl.ParameterDefaults()["ConnectAuth"]; got != "required" {
		fail("parameter ConnectAuth: got default %q, want %q", got, "required")
	}
	if got, want := fmt.Sprint(p.AllowedValues), "[required off]"; got != want {
		fail("parameter ConnectAuth: got allowed values %s, want %s", got, want)
	}
	cache := tpl.CFN.Parameters["AuthorizerCacheSeconds"]
	if cache.Type != "Number" || cache.MinValue == nil || *cache.MinValue != 0 || cache.MaxValue == nil || *cache.MaxValue != 3600 {
		fail("parameter AuthorizerCacheSeconds: got %s %v..%v, want a Number 0..3600", cache.Type, deref(cache.MinValue), deref(cache.MaxValue))
	}

	api, err := tpl.WebSocketAPI()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	routes, err := tpl.Routes()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var auth *Authorizer
	for _, r := range routes {
		switch {
		case r.Authorizer == nil:
		case r.Key != "$connect":
			fail("route %s: got authorizer %s, want none (only $connect)", r.Key, r.Authorizer.LogicalID)
		default:
			auth = r.Authorizer
		}
	}
	if auth == nil {
		return errors.Join(append(errs, errors.New("route $connect: got no authorizer, want one (ConnectAuth required)"))...)
	}
	if auth.Type != "REQUEST" || auth.Function != authorizerFunction {
		fail("authorizer %s: got %s invoking %s, want REQUEST invoking %s", auth.LogicalID, auth.Type, auth.Function, authorizerFunction)
	}
	if len(auth.IdentitySources) > 0 {
		fail("authorizer %s: got identity sources %v, want none: API Gateway would refuse a handshake that lacks one, and browsers send the token in the subprotocol", auth.LogicalID, auth.IdentitySources)
	}
	if a := tpl.CFN.GetAllApiGatewayV2AuthorizerResources()[auth.LogicalID]; a.AuthorizerResultTtlInSeconds != nil {
		fail("authorizer %s: got AuthorizerResultTtlInSeconds %d, want none (WebSocket APIs do not cache authorizer results)", auth.LogicalID, *a.AuthorizerResultTtlInSeconds)
	}

	fns := tpl.Functions()
	for _, id := range tpl.FunctionIDs() {
		got, ok := fns[id].Environment["AUTH_CACHE_SECONDS"]
		switch {
		case id == auth.Function && got != "ref:AuthorizerCacheSeconds":
			fail("function %s: got AUTH_CACHE_SECONDS=%q, want %q", id, got, "ref:AuthorizerCacheSeconds")
		case id != auth.Function && ok:
			fail("function %s: got AUTH_CACHE_SECONDS=%q, want it on %s only", id, got, auth.Function)
		}
	}
	f := fns[auth.Function]
	if f.Role != "" {
		fail("function %s: got Role %q, want none (SAM would ignore Policies)", auth.Function, f.Role)
	}
	grants := 0
	for _, pol := range f.Policies {
		switch {
		case pol.Managed != "":
			fail("function %s: got managed policy %q, want only dynamodb:GetItem on %s", auth.Function, pol.Managed, authorizerTable)
		case pol.Template != "":
			fail("function %s: got policy template %s, want only dynamodb:GetItem on %s", auth.Function, pol.Template, authorizerTable)
		}
		for _, st := range pol.Statements {
			if len(st.NotAction) > 0 || len(st.NotResource) > 0 {
				fail("function %s: got NotAction %v / NotResource %v, want neither", auth.Function, st.NotAction, st.NotResource)
			}
			if st.Effect != "Allow" {
				continue
			}
			for _, a := range st.Action {
				if a != "dynamodb:GetItem" {
					fail("function %s: got Action %q, want only dynamodb:GetItem", auth.Function, a)
				}
			}
			for _, r := range st.Resource {
				if r != authorizerTable {
					fail("function %s: got Resource %q, want only %s", auth.Function, r, authorizerTable)
				}
			}
			grants++
		}
	}
	if grants == 0 {
		fail("function %s: got no grant, want dynamodb:GetItem on %s", auth.Function, authorizerTable)
	}

	wantArn := "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + api + "}/authorizers/${" + auth.LogicalID + "}"
	count := 0
	perms := tpl.CFN.GetAllLambdaPermissionResources()
	for _, id := range sortedKeys(perms) {
		perm := perms[id]
		if permissionFunction(perm.FunctionName) != auth.Function {
			continue
		}
		count++
		if perm.Action != "lambda:InvokeFunction" || perm.Principal != "apigateway.amazonaws.com" {
			fail("permission %s: got %s for %s, want lambda:InvokeFunction for apigateway.amazonaws.com", id, perm.Action, perm.Principal)
		}
		if got := str(perm.SourceArn); got != wantArn {
			fail("permission %s: got SourceArn %q, want %s (this API's authorizer only)", id, got, wantArn)
		}
	}
	if count != 1 {
		fail("function %s: got %d invoke permissions, want 1 (for authorizer %s)", auth.Function, count, auth.LogicalID)
	}
	return errors.Join(errs...)
}

// permissionFunction returns the logical id an AWS::Lambda::Permission's
// FunctionName refers to (Ref X or Fn::GetAtt X.Arn).
func permissionFunction(name string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(name, RefPrefix), GetAttPrefix), ".Arn")
}

// checkCode checks that every function's CodeUri is a directory of the
// repository holding a Go main package with a func main, as built for
// Lambda (linux/arm64, -tags lambda.norpc).
func checkCode(tpl *Template, root string) error {
	var errs []error
	fns := tpl.Functions()
	for _, id := range tpl.FunctionIDs() {
		f := fns[id]
		if f.CodeURI == "" || !filepath.IsLocal(filepath.FromSlash(f.CodeURI)) {
			errs = append(errs, fmt.Errorf("function %s: got CodeUri %q, want a directory inside the repository", id, f.CodeURI))
			continue
		}
		if err := mainPackage(filepath.Join(root, filepath.FromSlash(f.CodeURI))); err != nil {
			errs = append(errs, fmt.Errorf("function %s: CodeUri %s: %w", id, f.CodeURI, err))
		}
		if f.BuildMethod != "go1.x" {
			errs = append(errs, fmt.Errorf("function %s: got Metadata.BuildMethod %q, want go1.x", id, f.BuildMethod))
		}
	}
	return errors.Join(errs...)
}

func mainPackage(dir string) error {
	ctx := build.Default
	ctx.GOOS, ctx.GOARCH, ctx.CgoEnabled = "linux", "arm64", false
	ctx.BuildTags = []string{"lambda.norpc"}
	pkg, err := ctx.ImportDir(dir, 0)
	if err != nil {
		return err
	}
	if pkg.Name != "main" {
		return fmt.Errorf("got package %s, want main", pkg.Name)
	}
	fset := token.NewFileSet()
	for _, name := range pkg.GoFiles {
		file, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if file.Name.Name != "main" {
			return fmt.Errorf("%s: got package %s, want main", name, file.Name.Name)
		}
		for _, d := range file.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "main" {
				return nil
			}
		}
	}
	return fmt.Errorf("got no func main in %v, want one", pkg.GoFiles)
}

func checkRuntime(tpl *Template, _ string) error {
	var errs []error
	fns := tpl.Functions()
	if got, want := tpl.FunctionIDs(), sortedKeys(wantManageConnections); !reflect.DeepEqual(got, want) {
		errs = append(errs, fmt.Errorf("got functions %v, want %v", got, want))
	}
	for _, id := range tpl.FunctionIDs() {
		f := fns[id]
		if f.Runtime != "provided.al2023" {
			errs = append(errs, fmt.Errorf("function %s: got runtime %q, want %q", id, f.Runtime, "provided.al2023"))
		}
		if f.Handler != "bootstrap" {
			errs = append(errs, fmt.Errorf("function %s: got handler %q, want %q", id, f.Handler, "bootstrap"))
		}
		if !reflect.DeepEqual(f.Architectures, []string{"arm64"}) {
			errs = append(errs, fmt.Errorf("function %s: got architectures %v, want [arm64]", id, f.Architectures))
		}
	}
	return errors.Join(errs...)
}

// manageConnectionsResource is the only resource execute-api:ManageConnections
// may be granted on: any verb and connection of this API's stage.
func manageConnectionsResource(api string) *regexp.Regexp {
	return regexp.MustCompile(`^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{` +
		regexp.QuoteMeta(api) + `\}/\$\{StageName\}/(?:\*|POST|GET|DELETE)/@connections/[^/]+$`)
}

// checkPolicies checks least privilege: every function may use the table
// only as wantDynamoDB says (CRUD on Table, or exactly the listed actions on
// the listed resources), has no managed policy, and may call ManageConnections
// only on this stage's @connections, only where wantManageConnections says so.
func checkPolicies(tpl *Template, _ string) error {
	api, err := tpl.WebSocketAPI()
	if err != nil {
		return err
	}
	manageRE := manageConnectionsResource(api)
	wantResource := "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + api + "}/${StageName}/*/@connections/*"
	var errs []error
	fns := tpl.Functions()
	for _, id := range tpl.FunctionIDs() {
		f := fns[id]
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("function %s: "+format, append([]any{id}, args...)...))
		}
		if f.Role != "" {
			fail("got Role %q, want none (SAM would ignore Policies)", f.Role)
		}
		manage := false
		dynamo := map[string][]string{} // resource → actions granted
		for _, p := range f.Policies {
			switch {
			case p.Managed != "":
				fail("got managed policy %q, want only DynamoDBCrudPolicy and policy documents", p.Managed)
			case p.Template == "DynamoDBCrudPolicy":
				if tn := p.Parameters["TableName"]; tn != "ref:Table" {
					fail("got DynamoDBCrudPolicy TableName %q, want %q", fmt.Sprint(tn), "ref:Table")
				} else {
					dynamo["crud"] = nil
				}
			case p.Template != "":
				fail("got policy template %s, want only DynamoDBCrudPolicy", p.Template)
			case p.Statements != nil:
				for _, s := range p.Statements {
					if len(s.NotAction) > 0 || len(s.NotResource) > 0 {
						fail("got NotAction %v / NotResource %v, want neither", s.NotAction, s.NotResource)
					}
					if s.Effect != "Allow" {
						continue // a Deny grants nothing
					}
					if len(s.Resource) == 0 {
						fail("got a statement with no Resource")
					}
					for _, a := range s.Action {
						switch {
						case a == "execute-api:ManageConnections":
							for _, r := range s.Resource {
								if !manageRE.MatchString(r) {
									fail("got Resource %q, want %s", r, wantResource)
								}
							}
							manage = true
						case strings.HasPrefix(a, "dynamodb:") && !strings.Contains(a, "*"):
							for _, r := range s.Resource {
								dynamo[r] = append(dynamo[r], a)
							}
						case a == "lambda:InvokeFunction" && wantInvoke[id] != "":
							if len(s.Resource) != 1 || s.Resource[0] != wantInvoke[id] {
								fail("got lambda:InvokeFunction on %v, want on %s only", s.Resource, wantInvoke[id])
							}
						default:
							fail("got Action %q, want only execute-api:ManageConnections, named dynamodb actions and lambda:InvokeFunction of the fan-out function", a)
						}
					}
				}
			default:
				fail("got policy entry %v, want DynamoDBCrudPolicy or a policy document", p.Raw)
			}
		}
		for r := range dynamo {
			slices.Sort(dynamo[r])
		}
		if want := wantDynamoDB[id]; !reflect.DeepEqual(dynamo, want) {
			fail("got DynamoDB grants %v, want %v", dynamo, want)
		}
		if want := wantManageConnections[id]; manage != want {
			fail("got ManageConnections %v, want %v", manage, want)
		}
	}
	return errors.Join(errs...)
}

// checkSchedule checks the sweeper's schedule: one EventBridge rule that
// takes SweepSchedule, a rate the local gateway can run too, and no retry
// of a failed run (the next one starts over).
func checkSchedule(tpl *Template, _ string) error {
	var errs []error
	scheds := tpl.Schedules()
	if len(scheds) != 1 || scheds[0].Function != "SweeperFunction" || scheds[0].Expression != "ref:SweepSchedule" || !scheds[0].Enabled {
		return fmt.Errorf("got schedules %+v, want one enabled schedule of SweeperFunction on ref:SweepSchedule", scheds)
	}
	def := tpl.ParameterDefaults()["SweepSchedule"]
	if d, err := RateInterval(def); err != nil || d != time.Minute {
		errs = append(errs, fmt.Errorf("parameter SweepSchedule: default %q is %v, %v; want a rate of 1 minute", def, d, err))
	}
	pattern := tpl.CFN.Parameters["SweepSchedule"].AllowedPattern
	re, err := regexp.Compile(str(pattern))
	if err != nil {
		errs = append(errs, fmt.Errorf("parameter SweepSchedule: AllowedPattern %q: %v", str(pattern), err))
	} else {
		for _, expr := range []string{"rate(1 minute)", "rate(5 minutes)", "rate(2 hours)", "rate(10 days)", "rate(0 minutes)",
			"rate(1 minutes)", "rate(5 minute)", "rate(10 seconds)", "cron(0 * * * ? *)"} {
			_, rateErr := RateInterval(expr)
			if re.MatchString(expr) != (rateErr == nil) {
				errs = append(errs, fmt.Errorf("parameter SweepSchedule: AllowedPattern matches %q: %v; the local gateway parses it: %v", expr, re.MatchString(expr), rateErr))
			}
		}
	}
	f := tpl.CFN.GetAllServerlessFunctionResources()["SweeperFunction"]
	if f == nil || f.EventInvokeConfig == nil || f.EventInvokeConfig.MaximumRetryAttempts == nil || *f.EventInvokeConfig.MaximumRetryAttempts != 0 {
		errs = append(errs, errors.New("function SweeperFunction: want EventInvokeConfig.MaximumRetryAttempts 0"))
	}
	return errors.Join(errs...)
}

// checkFanOut checks the fan-out function: no retry of a failed batch by
// Lambda (a batch half delivered would post frames twice), an on-failure
// destination where failed batches land, the fixed name its own policy
// and its hand-on use, and the message function pointed at it.
func checkFanOut(tpl *Template, _ string) error {
	var errs []error
	f := tpl.CFN.GetAllServerlessFunctionResources()["FanOutFunction"]
	if f == nil {
		return errors.New("no FanOutFunction")
	}
	eic := f.EventInvokeConfig
	if eic == nil || eic.MaximumRetryAttempts == nil || *eic.MaximumRetryAttempts != 0 {
		errs = append(errs, errors.New("function FanOutFunction: want EventInvokeConfig.MaximumRetryAttempts 0"))
	}
	if eic == nil || eic.DestinationConfig == nil || eic.DestinationConfig.OnFailure == nil ||
		eic.DestinationConfig.OnFailure.Destination != "getatt:FanOutFailures.Arn" {
		errs = append(errs, errors.New("function FanOutFunction: want an OnFailure destination on FanOutFailures"))
	}
	const name = "${AWS::StackName}-fanout"
	if got := str(f.FunctionName); got != name {
		errs = append(errs, fmt.Errorf("function FanOutFunction: got FunctionName %q, want %q (its policy and FANOUT_FUNCTION name it)", got, name))
	}
	fns := tpl.Functions()
	if got := fns["FanOutFunction"].Environment["FANOUT_FUNCTION"]; got != name {
		errs = append(errs, fmt.Errorf("function FanOutFunction: got FANOUT_FUNCTION %q, want %q", got, name))
	}
	if got := fns["MessageFunction"].Environment["FANOUT_FUNCTION"]; got != "ref:FanOutFunction" {
		errs = append(errs, fmt.Errorf("function MessageFunction: got FANOUT_FUNCTION %q, want ref:FanOutFunction", got))
	}
	return errors.Join(errs...)
}

// checkThrottling checks that the stage throttles every route with both
// limits set from parameters whose defaults are positive (limits of 0
// refuse every request).
func checkThrottling(tpl *Template, _ string) error {
	var errs []error
	defaults := tpl.ParameterDefaults()
	for id := range tpl.CFN.GetAllApiGatewayV2StageResources() {
		rate, burst := tpl.StageThrottling(id)
		for _, v := range []struct{ name, got, param string }{
			{"ThrottlingRateLimit", rate, "RouteThrottlingRateLimit"},
			{"ThrottlingBurstLimit", burst, "RouteThrottlingBurstLimit"},
		} {
			if v.got != RefPrefix+v.param {
				errs = append(errs, fmt.Errorf("stage %s: got DefaultRouteSettings.%s %q, want ref:%s", id, v.name, v.got, v.param))
				continue
			}
			if n, err := strconv.ParseFloat(defaults[v.param], 64); err != nil || n <= 0 {
				errs = append(errs, fmt.Errorf("parameter %s: got default %q, want a positive number", v.param, defaults[v.param]))
			}
			if p := tpl.CFN.Parameters[v.param]; p.MinValue == nil || *p.MinValue < 1 {
				errs = append(errs, fmt.Errorf("parameter %s: want MinValue of at least 1", v.param))
			}
		}
	}
	return errors.Join(errs...)
}

// checkPermissions checks that each function may be invoked by API Gateway
// only through its own route of the WebSocket API (an authorizer's function:
// see checkAuthorizer).
func checkPermissions(tpl *Template, _ string) error {
	api, err := tpl.WebSocketAPI()
	if err != nil {
		return err
	}
	routes, err := tpl.Routes()
	if err != nil {
		return err
	}
	routeOf := map[string]string{}   // function → its route key
	authorizers := map[string]bool{} // functions of authorizers, which checkAuthorizer checks
	for _, r := range routes {
		routeOf[r.Function] = r.Key
		if r.Authorizer != nil {
			authorizers[r.Authorizer.Function] = true
		}
	}
	arnRE := regexp.MustCompile(`^arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{` +
		regexp.QuoteMeta(api) + `\}/([^/]+)/(.+)$`)
	var errs []error
	count := map[string]int{}
	perms := tpl.CFN.GetAllLambdaPermissionResources()
	for _, id := range sortedKeys(perms) {
		p := perms[id]
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("permission %s: "+format, append([]any{id}, args...)...))
		}
		if p.Action != "lambda:InvokeFunction" {
			fail("got Action %q, want lambda:InvokeFunction", p.Action)
		}
		if p.Principal != "apigateway.amazonaws.com" {
			fail("got Principal %q, want apigateway.amazonaws.com", p.Principal)
		}
		fn := permissionFunction(p.FunctionName)
		if authorizers[fn] {
			continue
		}
		key, ok := routeOf[fn]
		if !ok {
			fail("got FunctionName %q, want a function a route invokes", p.FunctionName)
			continue
		}
		count[fn]++
		wantArn := "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${" + api + "}/*/" + key
		m := arnRE.FindStringSubmatch(str(p.SourceArn))
		if m == nil || m[2] != key {
			fail("got SourceArn %q, want %s", str(p.SourceArn), wantArn)
		}
	}
	for _, r := range routes {
		if count[r.Function] != 1 {
			errs = append(errs, fmt.Errorf("function %s: got %d invoke permissions, want 1 (for route %s)", r.Function, count[r.Function], r.Key))
		}
	}
	return errors.Join(errs...)
}

// tableSpec is what the template and create-table.sh must agree on.
type tableSpec struct {
	Billing     string
	Hash, Range string
	Attrs       map[string]string // attribute name → type
	TTL         string            // attribute with TTL enabled; "" if none
	// Indexes describes each secondary index: "NAME: ATTR HASH, ATTR RANGE;
	// PROJECTION [ATTR...]".
	Indexes []string
}

// indexSpec describes an index for tableSpec.Indexes.
func indexSpec(name string, keys [][2]string, projection string, nonKey []string) string {
	var ks []string
	for _, k := range keys {
		ks = append(ks, k[0]+" "+k[1])
	}
	return strings.TrimSpace(name + ": " + strings.Join(ks, ", ") + "; " + projection + " " + strings.Join(nonKey, " "))
}

func (s tableSpec) diff(want tableSpec) []error {
	var errs []error
	if s.Billing != want.Billing {
		errs = append(errs, fmt.Errorf("got billing mode %q, want %q", s.Billing, want.Billing))
	}
	if s.Hash != want.Hash {
		errs = append(errs, fmt.Errorf("got hash key %q, want %q", s.Hash, want.Hash))
	}
	if s.Range != want.Range {
		errs = append(errs, fmt.Errorf("got range key %q, want %q", s.Range, want.Range))
	}
	if !reflect.DeepEqual(s.Attrs, want.Attrs) {
		errs = append(errs, fmt.Errorf("got attributes %v, want %v", s.Attrs, want.Attrs))
	}
	if s.TTL != want.TTL {
		errs = append(errs, fmt.Errorf("got TTL attribute %q, want %q", s.TTL, want.TTL))
	}
	if !slices.Equal(s.Indexes, want.Indexes) {
		errs = append(errs, fmt.Errorf("got secondary indexes %q, want %q", s.Indexes, want.Indexes))
	}
	return errs
}

func templateTable(tpl *Template) (tableSpec, []error) {
	var errs []error
	tables := tpl.CFN.GetAllDynamoDBTableResources()
	tb, ok := tables["Table"]
	if !ok || len(tables) != 1 {
		return tableSpec{}, []error{fmt.Errorf("got tables %v, want exactly one named Table", sortedKeys(tables))}
	}
	s := tableSpec{Billing: str(tb.BillingMode), Attrs: map[string]string{}}
	for _, gsi := range tb.GlobalSecondaryIndexes {
		var keys [][2]string
		for _, k := range gsi.KeySchema {
			keys = append(keys, [2]string{k.AttributeName, k.KeyType})
		}
		s.Indexes = append(s.Indexes, indexSpec(gsi.IndexName, keys, str(gsi.Projection.ProjectionType), gsi.Projection.NonKeyAttributes))
	}
	for _, lsi := range tb.LocalSecondaryIndexes {
		s.Indexes = append(s.Indexes, "local index "+lsi.IndexName)
	}
	for _, a := range tb.AttributeDefinitions {
		s.Attrs[a.AttributeName] = a.AttributeType
	}
	for i, k := range tb.KeySchema {
		switch {
		case i == 0 && k.KeyType == "HASH":
			s.Hash = k.AttributeName
		case i == 1 && k.KeyType == "RANGE":
			s.Range = k.AttributeName
		default:
			errs = append(errs, fmt.Errorf("got key schema element %d %s %s, want pk HASH then sk RANGE", i, k.AttributeName, k.KeyType))
		}
	}
	if ttl := tb.TimeToLiveSpecification; ttl == nil {
		errs = append(errs, errors.New("got no TimeToLiveSpecification, want TTL on expiresAt"))
	} else {
		if !ttl.Enabled {
			errs = append(errs, errors.New("got TTL enabled false, want true"))
		}
		s.TTL = str(ttl.AttributeName)
	}
	return s, errs
}

func checkTable(tpl *Template, _ string) error {
	s, errs := templateTable(tpl)
	errs = append(errs, s.diff(wantTable)...)
	tb := tpl.CFN.GetAllDynamoDBTableResources()["Table"]
	if tb == nil {
		return errors.Join(errs...)
	}
	if p := tb.PointInTimeRecoverySpecification; p == nil || p.PointInTimeRecoveryEnabled == nil || !*p.PointInTimeRecoveryEnabled {
		errs = append(errs, errors.New("got point-in-time recovery disabled, want enabled"))
	}
	if sse := tb.SSESpecification; sse == nil || !sse.SSEEnabled {
		errs = append(errs, errors.New("got SSE disabled, want SSESpecification.SSEEnabled true"))
	}
	if tb.ProvisionedThroughput != nil {
		errs = append(errs, errors.New("got ProvisionedThroughput, want none (on-demand)"))
	}
	return errors.Join(errs...)
}

func checkOutputs(tpl *Template, _ string) error {
	var errs []error
	out := func(name string) string {
		o, ok := tpl.CFN.Outputs[name]
		if !ok {
			errs = append(errs, fmt.Errorf("got no output %s, want one", name))
			return ""
		}
		s, _ := o.Value.(string)
		return s
	}
	url, mgmt, table := out("WebSocketURL"), out("ManagementEndpoint"), out("TableName")
	if !strings.HasPrefix(url, "wss://") {
		errs = append(errs, fmt.Errorf("output WebSocketURL: got %q, want it to start with wss://", url))
	}
	if want := "https://" + strings.TrimPrefix(url, "wss://"); mgmt != want {
		errs = append(errs, fmt.Errorf("output ManagementEndpoint: got %q, want %q (WebSocketURL over https)", mgmt, want))
	}
	if want := wantEnvironment["MANAGEMENT_ENDPOINT"]; mgmt != want {
		errs = append(errs, fmt.Errorf("output ManagementEndpoint: got %q, want %q", mgmt, want))
	}
	if table != "ref:Table" {
		errs = append(errs, fmt.Errorf("output TableName: got %q, want ref:Table", table))
	}
	return errors.Join(errs...)
}

func checkEnvironment(tpl *Template, _ string) error {
	var errs []error
	fns := tpl.Functions()
	for _, id := range tpl.FunctionIDs() {
		env := fns[id].Environment
		for _, name := range sortedKeys(wantEnvironment) {
			got, ok := env[name]
			switch want := wantEnvironment[name]; {
			case !ok:
				errs = append(errs, fmt.Errorf("function %s: got no %s, want %q", id, name, want))
			case got != want:
				errs = append(errs, fmt.Errorf("function %s: got %s=%q, want %q", id, name, got, want))
			}
		}
	}
	return errors.Join(errs...)
}

// checkCreateTable checks that the LocalStack init script creates the table
// as the template defines it. The script is read textually: the arguments
// of its `awslocal dynamodb create-table` and `update-time-to-live` commands.
func checkCreateTable(tpl *Template, script string) error {
	want, errs := templateTable(tpl)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	create, ttl := scriptCommands(script)
	if len(create) != 1 {
		return fmt.Errorf("create-table.sh: got %d awslocal dynamodb create-table commands, want 1", len(create))
	}
	if len(ttl) != 1 {
		return fmt.Errorf("create-table.sh: got %d awslocal dynamodb update-time-to-live commands, want 1", len(ttl))
	}
	var got tableSpec
	got.Attrs = map[string]string{}
	c := create[0]
	if tn := c["--table-name"]; len(tn) != 1 || tn[0] != "$TABLE_NAME" {
		errs = append(errs, fmt.Errorf("create-table.sh: create-table got --table-name %v, want $TABLE_NAME", tn))
	}
	if !strings.Contains(script, `TABLE_NAME="${TABLE_NAME:-mastersocket}"`) {
		errs = append(errs, errors.New(`create-table.sh: got no TABLE_NAME="${TABLE_NAME:-mastersocket}", want the name from TABLE_NAME, default mastersocket`))
	}
	if b := c["--billing-mode"]; len(b) == 1 {
		got.Billing = b[0]
	}
	for _, a := range c["--attribute-definitions"] {
		kv := shorthand(a)
		got.Attrs[kv["AttributeName"]] = kv["AttributeType"]
	}
	for _, k := range c["--key-schema"] {
		kv := shorthand(k)
		switch kv["KeyType"] {
		case "HASH":
			got.Hash = kv["AttributeName"]
		case "RANGE":
			got.Range = kv["AttributeName"]
		}
	}
	for _, raw := range c["--global-secondary-indexes"] {
		var gsis []struct {
			IndexName  string
			KeySchema  []struct{ AttributeName, KeyType string }
			Projection struct {
				ProjectionType   string
				NonKeyAttributes []string
			}
		}
		if err := json.Unmarshal([]byte(raw), &gsis); err != nil {
			errs = append(errs, fmt.Errorf("create-table.sh: --global-secondary-indexes %s: want JSON without spaces: %v", raw, err))
		}
		for _, g := range gsis {
			var keys [][2]string
			for _, k := range g.KeySchema {
				keys = append(keys, [2]string{k.AttributeName, k.KeyType})
			}
			got.Indexes = append(got.Indexes, indexSpec(g.IndexName, keys, g.Projection.ProjectionType, g.Projection.NonKeyAttributes))
		}
	}
	for range c["--local-secondary-indexes"] {
		got.Indexes = append(got.Indexes, "local index")
	}
	if spec := ttl[0]["--time-to-live-specification"]; len(spec) == 1 {
		if kv := shorthand(spec[0]); kv["Enabled"] == "true" {
			got.TTL = kv["AttributeName"]
		}
	}
	for _, err := range got.diff(want) {
		errs = append(errs, fmt.Errorf("create-table.sh: %w", err))
	}
	return errors.Join(errs...)
}

// scriptCommands returns the flags of each `awslocal dynamodb create-table`
// and `awslocal dynamodb update-time-to-live` command of a shell script:
// flag → the words after it up to the next flag, quotes removed.
func scriptCommands(script string) (create, ttl []map[string][]string) {
	script = strings.ReplaceAll(script, "\\\n", " ")
	for _, line := range strings.Split(script, "\n") {
		words := strings.Fields(line)
		if len(words) < 3 || words[0] != "awslocal" || words[1] != "dynamodb" {
			continue
		}
		flags := map[string][]string{}
		var flag string
		for _, w := range words[3:] {
			w = strings.Trim(w, `"'`)
			switch {
			case strings.HasPrefix(w, "--"):
				flag = w
				flags[flag] = []string{}
			case strings.HasPrefix(w, ">") || w == "|" || w == "&&" || w == "||":
				flag = "" // a redirection or the next command
			case flag != "":
				flags[flag] = append(flags[flag], w)
			}
		}
		switch words[2] {
		case "create-table":
			create = append(create, flags)
		case "update-time-to-live":
			ttl = append(ttl, flags)
		}
	}
	return create, ttl
}

// shorthand parses the AWS CLI shorthand "K=V,K=V".
func shorthand(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// --------------------------------------------------------- the package API

func TestRoutes(t *testing.T) {
	tpl := loadTemplate(t)
	routes, err := tpl.Routes()
	if err != nil {
		t.Fatal(err)
	}
	want := []Route{
		{Key: "$connect", Function: "ConnectFunction", LogicalID: "ConnectRoute", Integration: "ConnectIntegration", IntegrationType: "AWS_PROXY",
			Authorizer: &Authorizer{LogicalID: "Authorizer", Type: "REQUEST", Function: "AuthorizerFunction"}},
		{Key: "$default", Function: "MessageFunction", HasRouteResponse: true, LogicalID: "DefaultRoute", Integration: "MessageIntegration", IntegrationType: "AWS_PROXY"},
		{Key: "$disconnect", Function: "DisconnectFunction", LogicalID: "DisconnectRoute", Integration: "DisconnectIntegration", IntegrationType: "AWS_PROXY"},
	}
	if !reflect.DeepEqual(routes, want) {
		t.Errorf("Routes():\ngot  %+v\nwant %+v", routes, want)
		if len(routes) > 0 {
			t.Errorf("Routes()[0].Authorizer: got %+v, want %+v", routes[0].Authorizer, want[0].Authorizer)
		}
	}
}

// TestGlobalsMerge checks that Globals merge as SAM merges them.
func TestGlobalsMerge(t *testing.T) {
	const src = `
Transform: AWS::Serverless-2016-10-31
Parameters:
  Level: {Type: String, Default: info}
Globals:
  Function:
    Runtime: provided.al2023
    Handler: bootstrap
    Timeout: 30
    Architectures: [arm64]
    Environment:
      Variables:
        A: global
        B: !Ref Level
        N: 5
Resources:
  Plain:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/plain
  Own:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn/own
      Runtime: provided.al2
      Timeout: 5
      MemorySize: 512
      Environment:
        Variables:
          B: own
          C: !GetAtt Plain.Arn
`
	tpl, err := Parse([]byte(src), "/repo")
	if err != nil {
		t.Fatal(err)
	}
	fns := tpl.Functions()
	want := map[string]Function{
		"Plain": {
			LogicalID: "Plain", CodeURI: "fn/plain", Handler: "bootstrap", Runtime: "provided.al2023",
			Architectures: []string{"arm64"}, Timeout: 30,
			Environment: map[string]string{"A": "global", "B": "ref:Level", "N": "5"},
		},
		"Own": {
			LogicalID: "Own", CodeURI: "fn/own", Handler: "bootstrap", Runtime: "provided.al2",
			Architectures: []string{"arm64"}, Timeout: 5, MemorySize: 512,
			Environment: map[string]string{"A": "global", "B": "own", "N": "5", "C": "getatt:Plain.Arn"},
		},
	}
	if !reflect.DeepEqual(fns, want) {
		t.Errorf("Functions():\ngot  %+v\nwant %+v", fns, want)
	}
	if got, want := tpl.CodeDir(fns["Own"]), filepath.Join("/repo", "fn", "own"); got != want {
		t.Errorf("CodeDir: got %q, want %q", got, want)
	}
}

func TestIntrinsicsRendering(t *testing.T) {
	const src = `
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: fn
      Environment:
        Variables:
          SUB: !Sub "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}/${!Literal}"
          SUB_VARS: !Sub ["${Scheme}://${Host}/${Path}", {Scheme: wss, Host: !Ref Api, Path: !GetAtt Table.Arn}]
          GETATT_LIST: !GetAtt [Table, StreamArn]
          GETATT_LONG: {"Fn::GetAtt": ["Table", "Arn"]}
          PSEUDO: !Ref AWS::AccountId
          BOOL: true
      Description: !Ref AWS::NoValue
`
	tpl, err := Parse([]byte(src), ".")
	if err != nil {
		t.Fatal(err)
	}
	fn := tpl.Functions()["Fn"]
	want := map[string]string{
		"SUB":         "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/${Stage}/${!Literal}",
		"SUB_VARS":    "wss://${Api}/${Table.Arn}",
		"GETATT_LIST": "getatt:Table.StreamArn",
		"GETATT_LONG": "getatt:Table.Arn",
		"PSEUDO":      "ref:AWS::AccountId",
		"BOOL":        "true",
	}
	if !reflect.DeepEqual(fn.Environment, want) {
		t.Errorf("Environment:\ngot  %v\nwant %v", fn.Environment, want)
	}
	if d := tpl.CFN.GetAllServerlessFunctionResources()["Fn"].Description; d != nil {
		t.Errorf("Description (!Ref AWS::NoValue): got %q, want unset", *d)
	}
}

func TestExpand(t *testing.T) {
	tpl := loadTemplate(t)
	values := tpl.ParameterDefaults()
	values["Table"] = "mastersocket"
	values["WebSocketApi"] = "abc123"
	values["AWS::Region"] = "eu-west-1"
	lookup := func(name string) (string, bool) { v, ok := values[name]; return v, ok }

	env := tpl.Functions()["MessageFunction"].Environment
	want := map[string]string{
		"TABLE_NAME":          "mastersocket",
		"MANAGEMENT_ENDPOINT": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod",
		"MAX_MESSAGE_BYTES":   "32768",
		"PING_INTERVAL_MS":    "30000",
		"FANOUT_LIMIT":        "64",
		"SHARD_COUNT":         "4",
		"LOG_LEVEL":           "info",
	}
	for name, w := range want {
		got, err := Expand(env[name], lookup)
		if err != nil || got != w {
			t.Errorf("Expand(%s=%q): got %q, %v, want %q", name, env[name], got, err, w)
		}
	}
	if got, err := Expand("a ${!Literal} b", lookup); err != nil || got != "a ${Literal} b" {
		t.Errorf("Expand(escape): got %q, %v, want %q", got, err, "a ${Literal} b")
	}
	if _, err := Expand("https://${Nope}/${StageName}", lookup); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("Expand(unknown name): got error %v, want one naming Nope", err)
	}
	if _, err := Expand("ref:Nope", lookup); err == nil {
		t.Error("Expand(ref:Nope): got no error, want one")
	}
}

func TestRoutesErrors(t *testing.T) {
	orig, err := os.ReadFile(templatePath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, old, new, wantErr string }{
		{"target names no integration", `Target: !Sub "integrations/${ConnectIntegration}"`, `Target: !Sub "integrations/${Nothing}"`, "Nothing"},
		{"integration invokes no function", "functions/${ConnectFunction.Arn}/invocations", "functions/${Table.Arn}/invocations", "Table"},
		{"integration of another API", "      ApiId: !Ref WebSocketApi\n      IntegrationType", "      ApiId: other\n      IntegrationType", "ApiId"},
		{"CUSTOM without an AuthorizerId",
			"      AuthorizerId: !If [ConnectAuthRequired, !Ref Authorizer, !Ref AWS::NoValue]\n", "",
			"route ConnectRoute ($connect): AuthorizationType CUSTOM with AuthorizerId \"\", want a Ref"},
		{"AuthorizerId naming the table",
			"!If [ConnectAuthRequired, !Ref Authorizer, !Ref AWS::NoValue]", "!Ref Table",
			"route ConnectRoute ($connect): AuthorizerId names Table, which is not an AWS::ApiGatewayV2::Authorizer"},
		{"authorizer on $disconnect",
			"      RouteKey: $disconnect\n      AuthorizationType: NONE\n",
			"      RouteKey: $disconnect\n      AuthorizationType: CUSTOM\n      AuthorizerId: !Ref Authorizer\n",
			"route DisconnectRoute ($disconnect): AuthorizationType CUSTOM: a WebSocket API allows an authorizer only on $connect"},
		{"JWT authorizer", "AuthorizerType: REQUEST", "AuthorizerType: JWT",
			`authorizer Authorizer: AuthorizerType "JWT", want REQUEST`},
		{"authorizer invoking the table", "functions/${AuthorizerFunction.Arn}/invocations", "functions/${Table.Arn}/invocations",
			"authorizer Authorizer: AuthorizerUri invokes Table, which is not a function of the template"},
		{"authorizer invoking no function", "functions/${AuthorizerFunction.Arn}/invocations", "functions/x/invocations",
			"authorizer Authorizer: AuthorizerUri"},
		{"authorizer of another API",
			"      ApiId: !Ref WebSocketApi\n      AuthorizerType: REQUEST", "      ApiId: other\n      AuthorizerType: REQUEST",
			`authorizer Authorizer: ApiId "other", want "ref:WebSocketApi"`},
		{"identity source of a REST API",
			"      AuthorizerType: REQUEST\n", "      AuthorizerType: REQUEST\n      IdentitySource: [method.request.header.Authorization]\n",
			`IdentitySource "method.request.header.Authorization"`},
		{"AuthorizerId without CUSTOM", "AuthorizationType: !If [ConnectAuthRequired, CUSTOM, NONE]", "AuthorizationType: NONE",
			`route ConnectRoute ($connect): AuthorizerId "ref:Authorizer" with AuthorizationType "NONE"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(string(orig), tc.old) {
				t.Fatalf("template.yaml no longer contains %q: update this test case", tc.old)
			}
			tpl, err := Parse([]byte(strings.Replace(string(orig), tc.old, tc.new, 1)), repoRoot)
			if err != nil {
				t.Fatal(err)
			}
			_, err = tpl.Routes()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Routes(): got error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestLoadConcurrently guards the lock around goformation's intrinsic
// processing, which writes a package-level map on every call (run with -race).
func TestLoadConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Load(templatePath); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// ----------------------------------------------------------------- helpers

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func routeKeys(routes []Route) []string {
	keys := make([]string, len(routes))
	for i, r := range routes {
		keys[i] = r.Key
	}
	return keys
}

func TestRateInterval(t *testing.T) {
	tests := []struct {
		expr string
		want time.Duration
	}{
		{"rate(1 minute)", time.Minute},
		{"rate(5 minutes)", 5 * time.Minute},
		{"rate(1 hour)", time.Hour},
		{"rate(12 hours)", 12 * time.Hour},
		{"rate(1 day)", 24 * time.Hour},
		{"rate(1 minutes)", 0},
		{"rate(2 minute)", 0},
		{"rate(0 minutes)", 0},
		{"rate(10 seconds)", 0},
		{"cron(0/5 * * * ? *)", 0},
		{"", 0},
	}
	for _, tt := range tests {
		got, err := RateInterval(tt.expr)
		if (err == nil) != (tt.want != 0) || got != tt.want {
			t.Errorf("RateInterval(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

func TestSchedules(t *testing.T) {
	tpl, err := Parse([]byte(`
Transform: AWS::Serverless-2016-10-31
Resources:
  A:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: a
      Events:
        Tick: {Type: Schedule, Properties: {Schedule: rate(5 minutes)}}
        Off: {Type: Schedule, Properties: {Schedule: rate(1 hour), Enabled: false}}
        Api: {Type: Api, Properties: {Path: /, Method: get}}
  B:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: b
      Events:
        V2: {Type: ScheduleV2, Properties: {ScheduleExpression: rate(1 day), State: DISABLED}}
`), ".")
	if err != nil {
		t.Fatal(err)
	}
	want := []Schedule{
		{Function: "A", Event: "Off", Expression: "rate(1 hour)", Enabled: false},
		{Function: "A", Event: "Tick", Expression: "rate(5 minutes)", Enabled: true},
		{Function: "B", Event: "V2", Expression: "rate(1 day)", Enabled: false},
	}
	if got := tpl.Schedules(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}
