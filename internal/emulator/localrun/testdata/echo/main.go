// Command echo is a function of a test template: a route that
// template.yaml does not have, with a function of its own, runs locally
// with no code change.
package main

import (
	"context"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	lambda.Start(func(_ context.Context, ev events.APIGatewayWebsocketProxyRequest) (events.APIGatewayProxyResponse, error) {
		return events.APIGatewayProxyResponse{StatusCode: 200, Body: "echo " + ev.RequestContext.RouteKey + " " + ev.Body}, nil
	})
}
