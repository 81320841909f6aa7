package auth

import (
	"errors"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// Every error Verify returns matches exactly one of these with errors.Is;
// Reason maps it to its metrics label.
var (
	// ErrMissing: no Authorization header, an empty one, or a scheme other
	// than Bearer.
	ErrMissing = errors.New("auth: no bearer token")
	// ErrTokenTooLarge: the token is longer than MaxTokenSize; it was not parsed.
	ErrTokenTooLarge = errors.New("auth: token too large")
	// ErrMalformed: not three base64url segments of JSON, a claim of the
	// wrong type, or a header this package does not understand (crit).
	ErrMalformed = errors.New("auth: malformed token")
	// ErrAlgorithm: the alg is not configured, unknown, "none", or does not
	// fit the key the kid selects (an RSA key never verifies an HS256 token).
	ErrAlgorithm = errors.New("auth: algorithm not allowed")
	// ErrUnknownKID: no loaded key has the token's kid and not exactly one
	// loaded key without a kid fits its alg, or the token has no kid and
	// not exactly one loaded key fits its alg.
	ErrUnknownKID = errors.New("auth: unknown key id")
	// ErrSignature: the signature does not verify. It is checked before the
	// claims, so an expired token with a bad signature fails with this.
	ErrSignature = errors.New("auth: bad signature")
	// ErrExpired: exp (plus leeway) is past.
	ErrExpired = errors.New("auth: token expired")
	// ErrNoExpiry: the token has no exp claim; one is required.
	ErrNoExpiry = errors.New("auth: token has no expiry")
	// ErrNotYetValid: nbf or iat (minus leeway) is in the future.
	ErrNotYetValid = errors.New("auth: token not yet valid")
	// ErrIssuer: iss is missing or differs from the configured issuer.
	ErrIssuer = errors.New("auth: wrong issuer")
	// ErrAudience: aud is missing or holds none of the configured audiences.
	ErrAudience = errors.New("auth: wrong audience")
	// ErrSubject: sub is missing, longer than MaxSubjectSize, or holds a
	// byte that is not printable ASCII (it becomes the X-User-ID header).
	ErrSubject = errors.New("auth: bad subject")
)

// reasons pairs each sentinel with its label, in the order Reason tests them.
var reasons = [...]struct {
	err   error
	label string
}{
	{ErrMissing, "missing"},
	{ErrTokenTooLarge, "too_large"},
	{ErrMalformed, "malformed"},
	{ErrAlgorithm, "algorithm"},
	{ErrUnknownKID, "kid"},
	{ErrSignature, "signature"},
	{ErrExpired, "expired"},
	{ErrNoExpiry, "no_expiry"},
	{ErrNotYetValid, "not_before"},
	{ErrIssuer, "issuer"},
	{ErrAudience, "audience"},
	{ErrSubject, "subject"},
}

// Reason returns the short metrics label for an error returned by Verify:
// "missing", "too_large", "malformed", "algorithm", "kid", "signature",
// "expired", "no_expiry", "not_before", "issuer", "audience" or "subject".
// It returns "" for nil and "malformed" for an error from elsewhere.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "malformed"
}

// Reasons returns every label Reason can return for a non-nil error, so
// that the caller can create its metric series up front. The slice is new
// on every call.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.label
	}
	return out
}

// fail wraps err, the detail, under the sentinel. Only the sentinel is in
// the chain, so errors.Is matches exactly one sentinel.
func fail(sentinel, err error) error {
	if err == nil || err == sentinel {
		return sentinel
	}
	return fmt.Errorf("%w: %v", sentinel, err)
}

// ownSentinels are the ones keyFor returns; jwt wraps them.
var ownSentinels = [...]error{ErrMalformed, ErrAlgorithm, ErrUnknownKID}

// classify maps an error of jwt.Parser.ParseWithClaims to one sentinel.
// The checks follow jwt's own order: syntax, alg, key, signature, claims.
func (v *Verifier) classify(tok *jwt.Token, c *tokenClaims, err error) error {
	for _, s := range ownSentinels {
		if errors.Is(err, s) {
			return fail(s, err)
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return fail(ErrMalformed, err)
	case tok != nil && tok.Method != nil && !v.allowed(tok.Method.Alg()):
		return fail(ErrAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenUnverifiable): // alg unknown, unspecified or none
		return fail(ErrAlgorithm, err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return fail(ErrSignature, err)
	}
	return fail(v.claimsReason(c, err), err)
}

// claimsReason picks the reason for a claims-validation error; when several
// claims fail, the first in this order wins.
func (v *Verifier) claimsReason(c *tokenClaims, err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return ErrAudience
	case !errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrMalformed
	case c.ExpiresAt == nil:
		return ErrNoExpiry
	case v.issuer != "" && c.Issuer == "":
		return ErrIssuer
	}
	return ErrAudience
}
