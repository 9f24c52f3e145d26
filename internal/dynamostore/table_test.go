package dynamostore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	dynamodbtable "github.com/awslabs/goformation/v7/cloudformation/dynamodb"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/emulator/template"
	"github.com/mastersocket/mastersocket/internal/router"
)

// TestEnsureTableMatchesTemplate checks that the table EnsureTable creates
// (for local runs and tests) is the table template.yaml deploys.
func TestEnsureTableMatchesTemplate(t *testing.T) {
	db := dynamotest.Client(t)
	name := dynamotest.NewTable(t, db) // made by EnsureTable
	if created, err := dynamostore.EnsureTable(t.Context(), db, name); err != nil || created {
		t.Fatalf("EnsureTable on an existing table: created=%v, %v; want false, nil", created, err)
	}
	got, err := db.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := db.DescribeTimeToLive(t.Context(), &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}

	tmpl, err := template.Load("../../template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want, err := tmpl.CFN.GetDynamoDBTableWithName("Table")
	if err != nil {
		t.Fatal(err)
	}
	var gotKeys, wantKeys, gotAttrs, wantAttrs []string
	for _, k := range got.Table.KeySchema {
		gotKeys = append(gotKeys, aws.ToString(k.AttributeName)+" "+string(k.KeyType))
	}
	for _, k := range want.KeySchema {
		wantKeys = append(wantKeys, k.AttributeName+" "+k.KeyType)
	}
	for _, a := range got.Table.AttributeDefinitions {
		gotAttrs = append(gotAttrs, aws.ToString(a.AttributeName)+" "+string(a.AttributeType))
	}
	for _, a := range want.AttributeDefinitions {
		wantAttrs = append(wantAttrs, a.AttributeName+" "+a.AttributeType)
	}
	slices.Sort(gotAttrs)
	slices.Sort(wantAttrs)
	if !slices.Equal(gotKeys, wantKeys) || !slices.Equal(gotAttrs, wantAttrs) {
		t.Errorf("got keys %v attributes %v, want %v %v", gotKeys, gotAttrs, wantKeys, wantAttrs)
	}
	if got.Table.BillingModeSummary == nil || string(got.Table.BillingModeSummary.BillingMode) != aws.ToString(want.BillingMode) {
		t.Errorf("got billing %+v, want %s", got.Table.BillingModeSummary, aws.ToString(want.BillingMode))
	}
	if g, w := describeIndexes(got.Table.GlobalSecondaryIndexes), templateIndexes(want.GlobalSecondaryIndexes); !slices.Equal(g, w) {
		t.Errorf("got indexes %q, want %q", g, w)
	}
	d := ttl.TimeToLiveDescription
	if d == nil || aws.ToString(d.AttributeName) != aws.ToString(want.TimeToLiveSpecification.AttributeName) {
		t.Errorf("got TTL %+v, want on %s", d, aws.ToString(want.TimeToLiveSpecification.AttributeName))
	}
}

func describeIndexes(gsis []types.GlobalSecondaryIndexDescription) []string {
	var out []string
	for _, g := range gsis {
		s := aws.ToString(g.IndexName) + ":"
		for _, k := range g.KeySchema {
			s += " " + aws.ToString(k.AttributeName) + " " + string(k.KeyType)
		}
		s += "; " + string(g.Projection.ProjectionType) + " " + strings.Join(g.Projection.NonKeyAttributes, " ")
		out = append(out, s)
	}
	return out
}

func templateIndexes(gsis []dynamodbtable.Table_GlobalSecondaryIndex) []string {
	var out []string
	for _, g := range gsis {
		s := g.IndexName + ":"
		for _, k := range g.KeySchema {
			s += " " + k.AttributeName + " " + k.KeyType
		}
		s += "; " + aws.ToString(g.Projection.ProjectionType) + " " + strings.Join(g.Projection.NonKeyAttributes, " ")
		out = append(out, s)
	}
	return out
}

// A table made before the connections index existed gets it, and the
// connections recorded from then on are listed.
func TestEnsureTableAddsTheIndexToAnOldTable(t *testing.T) {
	db := dynamotest.Client(t)
	name := fmt.Sprintf("mst-old-%d", time.Now().UnixNano())
	_, err := db.CreateTable(t.Context(), &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("sk"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("sk"), KeyType: types.KeyTypeRange},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(name)}) })
	if created, err := dynamostore.EnsureTable(t.Context(), db, name); err != nil || created {
		t.Fatalf("EnsureTable: created=%v, %v; want false, nil", created, err)
	}
	got, err := db.DescribeTable(t.Context(), &dynamodb.DescribeTableInput{TableName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	if idx := describeIndexes(got.Table.GlobalSecondaryIndexes); len(idx) != 1 || !strings.HasPrefix(idx[0], "connections:") {
		t.Fatalf("got indexes %q, want the connections index", idx)
	}
	s, err := dynamostore.New(db, dynamostore.Config{Table: name})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.AddConnection(t.Context(), router.Connection{ID: "old-table=", ConnectedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if err := s.Connections(t.Context(), "", func(page []router.Connection) error {
		for _, c := range page {
			ids = append(ids, c.ID)
		}
		return nil
	}); err != nil || !slices.Equal(ids, []string{"old-table="}) {
		t.Fatalf("Connections: got %v, %v; want [old-table=]", ids, err)
	}
}
