package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password hashing parameters: argon2id with OWASP's recommended minimum (19 MiB, two passes,
// one lane). Hashes record their parameters, so raising these later keeps old hashes valid.
const (
	argonMemory  = 19 * 1024 // KiB
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// Password length bounds. The upper bound keeps a huge form field from costing a long hash.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

var b64 = base64.RawStdEncoding

// HashPassword returns the argon2id hash of password in PHC string format,
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>. It does not check the password's strength;
// see ValidatePassword.
func HashPassword(password string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("HashPassword: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed password hash")

// CheckPassword reports whether password matches the PHC hash. The comparison is constant
// time. An empty or malformed hash never matches (it returns false and an error for
// malformed ones, so that a corrupt row shows in logs).
func CheckPassword(hash, password string) (bool, error) {
	if hash == "" {
		return false, nil
	}
	p, err := parsePHC(hash)
	if err != nil {
		return false, err
	}
	key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1, nil
}

type phc struct {
	memory, time uint32
	threads      uint8
	salt, key    []byte
}

func parsePHC(s string) (phc, error) {
	var p phc
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, errBadHash
	}
	var threads uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &threads); err != nil {
		return p, errBadHash
	}
	// Bounds keep a tampered row from making one sign-in cost gigabytes or minutes.
	if p.memory < 8*1024 || p.memory > 1024*1024 || p.time < 1 || p.time > 16 || threads < 1 || threads > 16 {
		return p, errBadHash
	}
	p.threads = uint8(threads)
	var err error
	if p.salt, err = b64.DecodeString(parts[4]); err != nil || len(p.salt) < 8 {
		return p, errBadHash
	}
	if p.key, err = b64.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return p, errBadHash
	}
	return p, nil
}

// ValidatePassword checks a password chosen by a person: MinPasswordLen to MaxPasswordLen
// characters of valid UTF-8. It returns a ValidationError for field "password".
func ValidatePassword(password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return &ValidationError{Field: "password", Message: "must be valid UTF-8"}
	case n < MinPasswordLen:
		return &ValidationError{Field: "password", Message: fmt.Sprintf("must be at least %d characters", MinPasswordLen)}
	case n > MaxPasswordLen:
		return &ValidationError{Field: "password", Message: fmt.Sprintf("must be at most %d characters", MaxPasswordLen)}
	}
	return nil
}

// GeneratePassword returns a random password of 26 characters (base32, 130 bits).
func GeneratePassword() string { return rand.Text() }

// dummyHash is checked against when the user does not exist, so that a sign-in for an unknown
// name costs the same time as one for a known name. It is made on first use, not at start.
var dummyHash = sync.OnceValue(func() string {
	h, err := HashPassword(rand.Text())
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return h
})
