package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// TableAPI is the part of the DynamoDB client that EnsureTable calls.
type TableAPI interface {
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
	UpdateTimeToLive(ctx context.Context, in *dynamodb.UpdateTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTimeToLiveOutput, error)
	DescribeTimeToLive(ctx context.Context, in *dynamodb.DescribeTimeToLiveInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTimeToLiveOutput, error)
	UpdateTable(ctx context.Context, in *dynamodb.UpdateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateTableOutput, error)
}

var _ TableAPI = (*dynamodb.Client)(nil)

// attributeDefinitions are the table's and its index's key attributes.
func attributeDefinitions() []types.AttributeDefinition {
	return []types.AttributeDefinition{
		{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(attrConnShard), AttributeType: types.ScalarAttributeTypeS},
		{AttributeName: aws.String(attrConnectedAt), AttributeType: types.ScalarAttributeTypeN},
	}
}

// connectionsIndex is the global secondary index of connection items that
// the sweeper queries: only what it needs is projected.
func connectionsIndex() (name *string, keys []types.KeySchemaElement, projection *types.Projection) {
	return aws.String(IndexConnections),
		[]types.KeySchemaElement{
			{AttributeName: aws.String(attrConnShard), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrConnectedAt), KeyType: types.KeyTypeRange},
		},
		&types.Projection{
			ProjectionType:   types.ProjectionTypeInclude,
			NonKeyAttributes: []string{attrServiceID, attrGroup, attrIdentifiedAt, attrExpiresAt},
		}
}

// EnsureTable creates the table as template.yaml defines it (key pk/sk,
// on-demand, TTL on expiresAt, the connections index) unless it exists,
// waits until it is active, adds the connections index to a table made
// without it (by an earlier version) and waits for the index, and enables
// TTL on expiresAt unless it is on. It reports whether it created the
// table.
func EnsureTable(ctx context.Context, api TableAPI, name string) (created bool, err error) {
	desc, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var nf *types.ResourceNotFoundException
	switch {
	case err == nil:
		if err := ensureIndex(ctx, api, name, desc.Table); err != nil {
			return false, err
		}
		return false, ensureTTL(ctx, api, name)
	case !errors.As(err, &nf):
		return false, fmt.Errorf("describe table %s: %w", name, err)
	}
	index, keys, projection := connectionsIndex()
	_, err = api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: attributeDefinitions(),
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{IndexName: index, KeySchema: keys, Projection: projection}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return false, fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(api, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = 2 * time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 2*time.Minute); err != nil {
		return false, fmt.Errorf("wait for table %s: %w", name, err)
	}
	if err := ensureTTL(ctx, api, name); err != nil {
		return false, err
	}
	return inUse == nil, nil
}

// ensureIndex adds the connections index to a table that lacks it, and
// waits until the index is active.
func ensureIndex(ctx context.Context, api TableAPI, name string, table *types.TableDescription) error {
	switch idx := connectionsIndexOf(table); {
	case idx != nil && idx.IndexStatus == types.IndexStatusActive:
		return nil
	case idx != nil:
		return waitForIndex(ctx, api, name)
	}
	index, keys, projection := connectionsIndex()
	_, err := api.UpdateTable(ctx, &dynamodb.UpdateTableInput{
		TableName:            aws.String(name),
		AttributeDefinitions: attributeDefinitions(),
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName: index, KeySchema: keys, Projection: projection,
		}}},
	})
	if err != nil {
		return fmt.Errorf("add index %s to table %s: %w", IndexConnections, name, err)
	}
	return waitForIndex(ctx, api, name)
}

// waitForIndex waits (up to 10 minutes: DynamoDB backfills an index added
// to a big table) until the connections index is active.
func waitForIndex(ctx context.Context, api TableAPI, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		out, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return fmt.Errorf("describe table %s: %w", name, err)
		}
		if idx := connectionsIndexOf(out.Table); idx != nil && idx.IndexStatus == types.IndexStatusActive {
			return nil
		}
		if err := sleep(ctx, delay); err != nil {
			return fmt.Errorf("wait for index %s of table %s: %w", IndexConnections, name, err)
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// ensureTTL enables TTL on expiresAt unless it is enabled (or being).
func ensureTTL(ctx context.Context, api TableAPI, name string) error {
	out, err := api.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		return fmt.Errorf("describe TTL of %s: %w", name, err)
	}
	if d := out.TimeToLiveDescription; d != nil && aws.ToString(d.AttributeName) == attrExpiresAt &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		return nil
	}
	_, err = api.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(attrExpiresAt), Enabled: aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("enable TTL on %s: %w", name, err)
	}
	return nil
}

// CheckTable checks, without changing anything, that the table exists and
// has the connections index: what a deployed stack's table has. It is what
// a local gateway does against real AWS, where it must not create or alter
// tables.
func CheckTable(ctx context.Context, api TableAPI, name string) error {
	desc, err := api.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		return fmt.Errorf("table %s does not exist: deploy the stack and pass its TableName output with --table", name)
	case err != nil:
		return fmt.Errorf("describe table %s: %w", name, err)
	}
	if connectionsIndexOf(desc.Table) == nil {
		return fmt.Errorf("table %s has no %s index: update the stack with this version's template.yaml", name, IndexConnections)
	}
	return nil
}

// connectionsIndexOf returns the connections index of a table description,
// or nil when it has none.
func connectionsIndexOf(table *types.TableDescription) *types.GlobalSecondaryIndexDescription {
	if table == nil {
		return nil
	}
	for i, gsi := range table.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == IndexConnections {
			return &table.GlobalSecondaryIndexes[i]
		}
	}
	return nil
}
