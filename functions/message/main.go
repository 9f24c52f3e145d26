// Command message is the Lambda function of the WebSocket API's $default route.
// Its settings come from environment variables; see internal/handler.Settings.
package main

import (
	"context"
	"log"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/mastersocket/mastersocket/internal/handler"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	h, err := handler.FromEnv(context.Background(), os.Getenv)
	if err != nil {
		return err
	}
	lambda.Start(h.Message)
	return nil
}
