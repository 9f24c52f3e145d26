// Command floor is the do-nothing Lambda function that BenchmarkColdStart
// measures mastersocket's functions against: lambda.Start of a handler
// that returns nil, in a binary that links what every function links
// anyway, the AWS configuration and the DynamoDB, API Gateway Management
// API and Lambda clients. Its size and its time to a first answer are the
// floor a Go function with those clients cannot go below.
package main

import (
	"context"
	"log"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/apigatewaymanagementapi"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	lambdaapi "github.com/aws/aws-sdk-go-v2/service/lambda"
)

// clients keeps the clients reachable, as a function's handlers keep theirs.
type clients struct {
	db     *dynamodb.Client
	mgmt   *apigatewaymanagementapi.Client
	lambda *lambdaapi.Client
}

func main() {
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	c := &clients{
		db:     dynamodb.NewFromConfig(cfg),
		mgmt:   apigatewaymanagementapi.NewFromConfig(cfg),
		lambda: lambdaapi.NewFromConfig(cfg),
	}
	lambda.Start(c.handle)
}

// handle answers every event with nothing.
func (c *clients) handle(context.Context) error { return nil }
