package gateway

import "testing"

func TestWildcardMatchFollowsIAM(t *testing.T) {
	const arn = "arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect"
	tests := []struct {
		pattern string
		want    bool
	}{
		{arn, true},
		{"*", true},
		{"arn:aws:execute-api:*:*:*/*/$connect", true},
		{"arn:aws:execute-api:*", true},
		{"arn:aws:execute-api:us-east-?:123456789012:abc/prod/$connect", true},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/*", true},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect*", true},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/dev/$connect", false},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/prod/$connect?", false},
		{"arn:aws:execute-api:us-east-1:123456789012:abc/prod", false},
		{"ARN:aws:execute-api:us-east-1:123456789012:abc/prod/$connect", false}, // resources match case
		{"*/$disconnect", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, arn); got != tt.want {
			t.Errorf("wildcardMatch(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
	}
}
