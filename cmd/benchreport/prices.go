package main

// Price is one AWS price of the cost model: Dollars for Per units of Unit.
type Price struct {
	Key     string // how the cost model refers to it
	Item    string
	Dollars float64
	Per     float64
	Unit    string
	Source  string // where it was read
	Note    string
}

// PerUnit returns the price of one unit.
func (p Price) PerUnit() float64 { return p.Dollars / p.Per }

// pricesRead is when the prices below were read.
const pricesRead = "2026-11-26"

// Prices are the prices of the cost model: US East (N. Virginia),
// pay-as-you-go, first tier, no free tier. They were read on pricesRead from
// the sources given; AWS's own pages render their rate tables in the
// browser, so each figure was checked against the page's worked examples
// and a second source. Change them here, and the date above, when AWS
// changes them.
var Prices = []Price{
	{
		Key: "apigw-message", Item: "API Gateway WebSocket messages (sent or received, metered in 32 KB increments)",
		Dollars: 1.00, Per: 1e6, Unit: "messages",
		Source: "https://aws.amazon.com/api-gateway/pricing/",
		Note:   "first 1 billion a month; $0.80 per million after",
	},
	{
		Key: "apigw-connection-minute", Item: "API Gateway WebSocket connection minutes",
		Dollars: 0.25, Per: 1e6, Unit: "connection minutes",
		Source: "https://aws.amazon.com/api-gateway/pricing/",
	},
	{
		Key: "lambda-request", Item: "Lambda requests (arm64 and x86 alike)",
		Dollars: 0.20, Per: 1e6, Unit: "requests",
		Source: "https://aws.amazon.com/lambda/pricing/",
	},
	{
		Key: "lambda-gb-second", Item: "Lambda duration, arm64",
		Dollars: 0.0000133334, Per: 1, Unit: "GB-second",
		Source: "https://aws.amazon.com/lambda/pricing/",
		Note:   "first 7.5 billion GB-s a month (x86: $0.0000166667)",
	},
	{
		Key: "dynamodb-rru", Item: "DynamoDB on-demand read request units (Standard table class)",
		Dollars: 0.125, Per: 1e6, Unit: "read request units",
		Source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
		Note:   "since the price cut of 1 November 2024 (was $0.25)",
	},
	{
		Key: "dynamodb-wru", Item: "DynamoDB on-demand write request units (Standard table class)",
		Dollars: 0.625, Per: 1e6, Unit: "write request units",
		Source: "https://aws.amazon.com/dynamodb/pricing/on-demand/",
		Note:   "since the price cut of 1 November 2024 (was $1.25)",
	},
}

// priceSources are the second sources the prices were checked against.
var priceSources = []string{
	"https://aws.amazon.com/ko/blogs/aws/amazon-dynamodb-on-demand-no-capacity-planning-and-pay-per-request-pricing/ (updated 31 January 2025 for the reduced on-demand prices)",
	"https://airbyte.com/data-engineering-resources/dynamodb-pricing (WRU $0.625, RRU $0.125 per million after the November 2024 cut)",
	"https://cloudchipr.com/blog/aws-lambda-pricing (arm64 $0.0000133334 per GB-s for the first 7.5 billion)",
	"https://www.repost.aws/pt/questions/QU7IqgooGeQmqudOsmzTw5YQ/how-to-interpret-websocket-api-connection-minutes-pricing ($0.25 per million connection minutes)",
}

// price returns the price with the key; the keys are fixed above.
func price(key string) Price {
	for _, p := range Prices {
		if p.Key == key {
			return p
		}
	}
	panic("benchreport: no price " + key)
}
