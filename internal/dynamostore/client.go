package dynamostore

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// NewClient returns a DynamoDB client from the default AWS configuration
// (environment, shared files, instance role). With an endpoint, such as
// DynamoDB Local's http://127.0.0.1:8000 or LocalStack's
// http://127.0.0.1:4566, it talks to that endpoint instead, in region
// us-east-1 unless AWS_REGION says otherwise, and signs with the static
// credentials local/local unless AWS_ACCESS_KEY_ID is set: local engines
// accept any, and no credential lookup has to time out first. Response
// checksums are not validated against such an endpoint.
func NewClient(ctx context.Context, endpoint string) (*dynamodb.Client, error) {
	var opts []func(*config.LoadOptions) error
	if endpoint != "" {
		if os.Getenv("AWS_REGION") == "" && os.Getenv("AWS_DEFAULT_REGION") == "" {
			opts = append(opts, config.WithRegion("us-east-1"))
		}
		if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
			opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
		}
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// DynamoDB Local sends CRC32 headers that do not match its
			// error bodies; the SDK would log a warning for each.
			o.DisableValidateResponseChecksum = true
		}
	}), nil
}
