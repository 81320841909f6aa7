package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"strings"
)

const (
	// minRSABits is the smallest RSA modulus accepted (NIST SP 800-131A).
	minRSABits = 2048
	// minHMACSecret is the shortest HS* secret accepted (RFC 7518 3.2: at
	// least the hash size of HS256).
	minHMACSecret = 32
	// maxKeyFile bounds a key file or a fetched JWK Set.
	maxKeyFile = 1 << 20
)

// key is one verification key. It is immutable once loaded.
type key struct {
	kid string
	alg string // the JWK's "alg" when the set pins one; then only that alg
	pub any    // *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey or []byte (HMAC)
}

// fits reports whether the key may verify a token signed with alg: the key
// type must match the algorithm family, and the EC curve the hash size.
func (k *key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			return true
		}
	case *ecdsa.PublicKey:
		return curveAlg(pub.Curve) == alg
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case []byte:
		return isHMAC(alg)
	}
	return false
}

func isHMAC(alg string) bool {
	return alg == "HS256" || alg == "HS384" || alg == "HS512"
}

// curveAlg returns the one ES* algorithm a curve signs with.
func curveAlg(c elliptic.Curve) string {
	switch c {
	case elliptic.P256():
		return "ES256"
	case elliptic.P384():
		return "ES384"
	case elliptic.P521():
		return "ES512"
	}
	return ""
}

// keySet is an immutable snapshot of every loaded key, swapped whole
// through Verifier.keys.
type keySet struct {
	byKID  map[string]*key // keys that have a kid
	single map[string]*key // alg -> the only key that fits it, for tokens without kid
	// kidless maps alg -> the only key without a kid that fits it, for
	// tokens whose kid no key has.
	kidless map[string]*key
	seen    *seen // tokens these keys verified
}

// onlyFit returns the one key of keys that fits alg (among those without a
// kid when kidless), nil when none or several do.
func onlyFit(keys []*key, alg string, kidless bool) *key {
	var only *key
	n := 0
	for _, k := range keys {
		if k.fits(alg) && (!kidless || k.kid == "") {
			only, n = k, n+1
		}
	}
	if n != 1 {
		return nil
	}
	return only
}

// newKeySet indexes keys for the configured algorithms. A kid used twice
// is an error: it would make the choice of key ambiguous.
func newKeySet(keys []*key, algs []string) (*keySet, error) {
	ks := &keySet{byKID: make(map[string]*key, len(keys)), single: make(map[string]*key, len(algs)),
		kidless: make(map[string]*key, len(algs)), seen: newSeen()}
	for _, k := range keys {
		if k.kid == "" {
			continue
		}
		if ks.byKID[k.kid] != nil {
			return nil, fmt.Errorf("auth: duplicate kid %q", k.kid)
		}
		ks.byKID[k.kid] = k
	}
	for _, alg := range algs {
		if k := onlyFit(keys, alg, false); k != nil {
			ks.single[alg] = k
		}
		if k := onlyFit(keys, alg, true); k != nil {
			ks.kidless[alg] = k
		}
	}
	return ks, nil
}

// jwk is the part of RFC 7517/7518/8037 this package reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys of other types ("oct", X25519...) and
// encryption keys (use "enc") are skipped; a malformed key of a supported
// type is an error, and so is a set with no usable key.
func parseJWKS(data []byte) ([]*key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("auth: JWK Set: %w", err)
	}
	var keys []*key
	for i := range set.Keys {
		k, err := parseJWK(&set.Keys[i])
		if err != nil {
			return nil, fmt.Errorf("auth: JWK Set: key %d (kid %q): %w", i, set.Keys[i].Kid, err)
		}
		if k != nil {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("auth: JWK Set: no usable signature key")
	}
	return keys, nil
}

// parseJWK returns nil, nil for a key this package does not use.
func parseJWK(j *jwk) (*key, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	var (
		pub any
		err error
	)
	switch j.Kty {
	case "RSA":
		pub, err = rsaJWK(j)
	case "EC":
		pub, err = ecJWK(j)
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, nil
		}
		pub, err = ed25519JWK(j)
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	k := &key{kid: j.Kid, alg: j.Alg, pub: pub}
	if j.Alg != "" && !k.fits(j.Alg) {
		return nil, nil // pinned to an algorithm it cannot sign with here (RSA-OAEP...)
	}
	return k, nil
}

func rsaJWK(j *jwk) (*rsa.PublicKey, error) {
	n, err := b64(j.N, "n")
	if err != nil {
		return nil, err
	}
	e, err := b64(j.E, "e")
	if err != nil {
		return nil, err
	}
	if len(e) > 4 {
		return nil, errors.New("e too large")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
	for _, b := range e {
		pub.E = pub.E<<8 | int(b)
	}
	return pub, checkRSA(pub)
}

func checkRSA(pub *rsa.PublicKey) error {
	if pub.N.BitLen() < minRSABits {
		return fmt.Errorf("RSA key of %d bits: want at least %d", pub.N.BitLen(), minRSABits)
	}
	if pub.E < 3 || pub.E&1 == 0 {
		return fmt.Errorf("bad RSA exponent %d", pub.E)
	}
	return nil
}

func ecJWK(j *jwk) (*ecdsa.PublicKey, error) {
	var curve elliptic.Curve
	switch j.Crv {
	case "P-256":
		curve = elliptic.P256()
	case "P-384":
		curve = elliptic.P384()
	case "P-521":
		curve = elliptic.P521()
	default:
		return nil, fmt.Errorf("unsupported curve %q", j.Crv)
	}
	size := (curve.Params().BitSize + 7) / 8
	x, err := b64(j.X, "x")
	if err != nil {
		return nil, err
	}
	y, err := b64(j.Y, "y")
	if err != nil {
		return nil, err
	}
	if len(x) != size || len(y) != size {
		return nil, fmt.Errorf("x and y must be %d bytes for %s", size, j.Crv)
	}
	point := append(append([]byte{4}, x...), y...)
	return ecdsa.ParseUncompressedPublicKey(curve, point) // checks the point is on the curve
}

func ed25519JWK(j *jwk) (ed25519.PublicKey, error) {
	x, err := b64(j.X, "x")
	if err != nil {
		return nil, err
	}
	if len(x) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("x must be %d bytes", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(x), nil
}

func b64(s, name string) ([]byte, error) {
	if s == "" {
		return nil, fmt.Errorf("missing %s", name)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// loadPublicKeyFile reads the first public key of a PEM file: a PKIX
// "PUBLIC KEY", a PKCS#1 "RSA PUBLIC KEY" or a "CERTIFICATE". Its kid is
// the file name without extension.
func loadPublicKeyFile(path string) (*key, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := parsePublicPEM(data)
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	return &key{kid: kidFromPath(path), pub: pub}, nil
}

func parsePublicPEM(data []byte) (any, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE block")
		}
		var (
			pub any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		return checkPublic(pub)
	}
}

// checkPublic accepts the key types and sizes this package verifies with.
func checkPublic(pub any) (any, error) {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return p, checkRSA(p)
	case *ecdsa.PublicKey:
		if curveAlg(p.Curve) == "" {
			return nil, errors.New("unsupported EC curve")
		}
		return p, nil
	case ed25519.PublicKey:
		return p, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", pub)
}

// kidFromPath is the file name rule: keys/demo-es256.pem -> "demo-es256".
func kidFromPath(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// readFile reads at most maxKeyFile bytes; a longer file is an error.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("auth: %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("auth: %s: larger than %d bytes", path, maxKeyFile)
	}
	return data, nil
}

// loadStatic loads every key the config names except jwks_url's.
func loadStatic(jwksFile string, pemFiles []string, hmacEnv string, hmac bool) ([]*key, error) {
	var keys []*key
	if jwksFile != "" {
		data, err := readFile(jwksFile)
		if err != nil {
			return nil, err
		}
		ks, err := parseJWKS(data)
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, jwksFile)
		}
		keys = append(keys, ks...)
	}
	for _, p := range pemFiles {
		k, err := loadPublicKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if hmac {
		secret, err := hmacSecret(hmacEnv)
		if err != nil {
			return nil, err
		}
		keys = append(keys, &key{pub: secret})
	}
	return keys, nil
}

// hmacSecret reads the HS* secret from the environment, never a file.
func hmacSecret(env string) ([]byte, error) {
	if env == "" {
		return nil, errors.New("auth: HS* algorithms need hmac_secret_env")
	}
	s := os.Getenv(env)
	if len(s) < minHMACSecret {
		return nil, fmt.Errorf("auth: environment variable %s: HMAC secret must be at least %d bytes, got %d", env, minHMACSecret, len(s))
	}
	return []byte(s), nil
}
