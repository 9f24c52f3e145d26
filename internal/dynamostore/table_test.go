package dynamostore_test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/mastersocket/mastersocket/internal/dynamostore"
	"github.com/mastersocket/mastersocket/internal/dynamotest"
	"github.com/mastersocket/mastersocket/internal/template"
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
	d := ttl.TimeToLiveDescription
	if d == nil || aws.ToString(d.AttributeName) != aws.ToString(want.TimeToLiveSpecification.AttributeName) {
		t.Errorf("got TTL %+v, want on %s", d, aws.ToString(want.TimeToLiveSpecification.AttributeName))
	}
}
