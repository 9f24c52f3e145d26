package token

import (
	"strings"
	"testing"
	"time"
)

func TestGenerate(t *testing.T) {
	a, ha, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, hb, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if a == b || ha == hb {
		t.Fatal("two generated tokens are equal")
	}
	if !strings.HasPrefix(a, Prefix) || len(a) != len(Prefix)+43 {
		t.Errorf("got token %q, want %s followed by 43 base64url characters", a, Prefix)
	}
	if HashOf(a) != ha {
		t.Error("Generate's hash is not HashOf its plaintext")
	}
}

func TestHashRoundTrip(t *testing.T) {
	h := HashOf("secret")
	// The SHA-256 of "secret", as sha256sum prints it.
	const want = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
	if h.String() != want {
		t.Fatalf("got %s, want %s", h, want)
	}
	if h.ID() != want[:16] {
		t.Errorf("got id %s", h.ID())
	}
	back, err := ParseHash(want)
	if err != nil || back != h {
		t.Errorf("ParseHash: got %v, %v", back, err)
	}
	for _, bad := range []string{"", "zz", want[:62]} {
		if _, err := ParseHash(bad); err == nil {
			t.Errorf("ParseHash(%q) succeeded", bad)
		}
	}
}

func TestTokenRules(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tok := Token{Hash: HashOf("t"), Groups: []string{"bots", "workers"}}
	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"matches own hash", tok.Matches(HashOf("t")), true},
		{"does not match another", tok.Matches(HashOf("u")), false},
		{"allows listed group", tok.Allows("workers"), true},
		{"refuses other group", tok.Allows("admins"), false},
		{"all groups", Token{AllGroups: true}.Allows("anything"), true},
		{"no expiry", tok.Expired(now), false},
		{"expired at", Token{ExpiresAt: now}.Expired(now), true},
		{"not yet expired", Token{ExpiresAt: now.Add(time.Second)}.Expired(now), false},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}
