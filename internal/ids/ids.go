// Package ids makes the random identifiers and secrets Patronage hands out.
// It decides nothing about what they identify.
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
)

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// New returns a record id such as "mem_3k5q…": a short type prefix and 128
// random bits, so ids reveal neither order nor count.
func New(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + "_" + lowerBase32.EncodeToString(b[:])
}

// Secret returns 256 random bits, URL-safe: for session ids, sign-in tokens
// and API tokens.
func Secret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Hash is the SHA-256 of a secret in hex: what Patronage stores instead of
// the secret itself.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
