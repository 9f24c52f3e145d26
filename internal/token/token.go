// Package token holds the service tokens that IDENTIFY presents: how they are
// generated, hashed, compared and scoped to groups. Only a token's SHA-256
// hash is ever stored.
package token

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Prefix starts every token this package generates, so that a leaked token
// is easy to recognise in logs and by secret scanners.
const Prefix = "mst_"

// ErrExists is what a store returns when asked to add a token whose hash it
// holds already.
var ErrExists = errors.New("token already exists")

// Hash is the SHA-256 of a token's plaintext.
type Hash [sha256.Size]byte

// HashOf returns the hash of a plaintext token.
func HashOf(plaintext string) Hash { return sha256.Sum256([]byte(plaintext)) }

// String returns the hash in lower-case hex, as stored.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// ID returns the short id of the token shown by listings and accepted by
// revocation: the first 16 hex digits of its hash.
func (h Hash) ID() string { return h.String()[:16] }

// ParseHash decodes a hash written by String.
func ParseHash(s string) (Hash, error) {
	var h Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, fmt.Errorf("token hash %q: want %d hex digits", s, 2*len(h))
	}
	copy(h[:], b)
	return h, nil
}

// Token is a stored token: its hash and what it allows.
type Token struct {
	Hash Hash
	// Name is an operator's label, such as the service it was made for.
	Name string
	// Groups are the groups an IDENTIFY with this token may join, unless
	// AllGroups is set.
	Groups    []string
	AllGroups bool
	CreatedAt time.Time
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time
}

// Generate returns a new random token's plaintext, to be shown once, and its
// hash, to be stored.
func Generate() (string, Hash, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", Hash{}, fmt.Errorf("generate token: %w", err)
	}
	plain := Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	return plain, HashOf(plain), nil
}

// Matches reports, in constant time, whether h is this token's hash.
func (t Token) Matches(h Hash) bool {
	return subtle.ConstantTimeCompare(t.Hash[:], h[:]) == 1
}

// Allows reports whether the token lets a service join group.
func (t Token) Allows(group string) bool {
	return t.AllGroups || slices.Contains(t.Groups, group)
}

// Expired reports whether the token has an expiry at or before now.
func (t Token) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}
