package localrun_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mastersocket/mastersocket/internal/emulator/localrun"
)

// routeAdded is template.yaml plus a route "echo" whose function is not one
// of mastersocket's.
func routeAdded(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	echoDir, err := filepath.Abs("testdata/echo")
	if err != nil {
		t.Fatal(err)
	}
	added := `
  EchoFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: ` + echoDir + `
  EchoIntegration:
    Type: AWS::ApiGatewayV2::Integration
    Properties:
      ApiId: !Ref WebSocketApi
      IntegrationType: AWS_PROXY
      IntegrationUri: !Sub "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${EchoFunction.Arn}/invocations"
  EchoRoute:
    Type: AWS::ApiGatewayV2::Route
    Properties:
      ApiId: !Ref WebSocketApi
      RouteKey: echo
      RouteResponseSelectionExpression: $default
      Target: !Sub "integrations/${EchoIntegration}"
  EchoRouteResponse:
    Type: AWS::ApiGatewayV2::RouteResponse
    Properties:
      ApiId: !Ref WebSocketApi
      RouteId: !Ref EchoRoute
      RouteResponseKey: $default

Outputs:`
	tmpl := strings.Replace(string(raw), "\nOutputs:", added, 1)
	if tmpl == string(raw) {
		t.Fatal("template.yaml has no Outputs section to insert before")
	}
	// Beside template.yaml, so that its relative CodeUris resolve; a name
	// of its own, so that test runs side by side do not share it.
	f, err := os.CreateTemp(filepath.Join("..", "..", ".."), "template.*.test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.Name()) })
	if _, err := f.WriteString(tmpl); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}

func TestARouteAddedToTheTemplateRunsWithNoCodeChange(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a function")
	}
	tmpl := routeAdded(t)
	s, err := localrun.Start(context.Background(), localrun.Options{
		Addr: "127.0.0.1:0", Template: tmpl, Token: e2eToken, BuildDir: t.TempDir(),
		Logger: testLogger(), Parameters: map[string]string{"ConnectAuth": "off"},
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Run(context.Background())
	defer s.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, s.URL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte(`{"action":"echo","x":1}`))
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != `echo echo {"action":"echo","x":1}` {
		t.Fatalf("the added route answered %q, %v", msg, err)
	}
	c.Write(ctx, websocket.MessageText, []byte(`{"op":3}`)) // the template's own routes still work
	if _, msg, err := c.Read(ctx); err != nil || string(msg) != `{"op":4}` {
		t.Fatalf("$default answered %q, %v", msg, err)
	}
}
