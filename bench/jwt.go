package main

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fastgate/fastgate/auth"
	"github.com/fastgate/fastgate/config"
)

// The jwt scenario's token: the demo ES256 key (keys/, kid demo-es256) and
// the demo config's issuer and audience.
const (
	jwtIssuer     = "https://auth.fastgate.local"
	jwtAudience   = "api"
	jwtSubject    = "42"
	jwtSigningKey = "demo-es256.pem"
	jwtJWKS       = "jwks.json"
	// jwtTTL outlives any run of the suite.
	jwtTTL = 24 * time.Hour
)

// jwtKeys are the key files every peer verifying the jwt scenario's token
// reads, all absolute paths.
type jwtKeys struct {
	// JWKSFile holds the public keys the gateway verifies with (jwks_file).
	JWKSFile string
	// PublicKeyFile is the ES256 public key as PEM, for HAProxy's jwt_verify.
	PublicKeyFile string
	// SigningKeyFile is the private key tokens are minted with.
	SigningKeyFile string
	Issuer         string
	Audience       string
}

// mintConfig is the [auth.jwt] config auth.Mint signs tokens for k with.
func (k *jwtKeys) mintConfig() *config.JWT {
	return &config.JWT{
		Algorithms:     []string{"ES256"},
		Issuer:         k.Issuer,
		Audience:       []string{k.Audience},
		JWKSFile:       k.JWKSFile,
		SigningKeyFile: k.SigningKeyFile,
	}
}

// prepareJWT writes the ES256 public key of keysDir's demo key into dir as
// PEM (HAProxy needs one; keys/ holds only the private key and the JWKS) and
// mints the bearer token every request of the scenario carries, with the
// gateway's own auth.Mint.
func prepareJWT(keysDir, dir string) (*jwtKeys, string, error) {
	if keysDir == "" {
		return nil, "", errors.New("no keys directory")
	}
	keysDir, err := filepath.Abs(keysDir)
	if err != nil {
		return nil, "", err
	}
	signing := filepath.Join(keysDir, jwtSigningKey)
	b, err := os.ReadFile(signing)
	if err != nil {
		return nil, "", err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, "", fmt.Errorf("%s: no PEM block", signing)
	}
	priv, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", signing, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, "", fmt.Errorf("%s: not a signing key", signing)
	}
	der, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return nil, "", err
	}
	k := &jwtKeys{
		JWKSFile:       filepath.Join(keysDir, jwtJWKS),
		PublicKeyFile:  filepath.Join(dir, strings.TrimSuffix(jwtSigningKey, ".pem")+".pub.pem"),
		SigningKeyFile: signing,
		Issuer:         jwtIssuer,
		Audience:       jwtAudience,
	}
	if err := os.WriteFile(k.PublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return nil, "", err
	}
	tok, err := auth.Mint(k.mintConfig(), jwtSubject, jwtTTL, time.Now())
	if err != nil {
		return nil, "", err
	}
	return k, tok, nil
}

// haproxyJWT renders frontend rules that verify the bearer token as the
// gateway does, with HAProxy's jwt_* converters (2.5+): alg pinned to
// ES256, the signature against the public key, iss, aud and exp; a failure
// is 401. The sub goes upstream as X-User-ID. Unlike the gateway, it
// checks neither nbf nor iat and applies no leeway.
func haproxyJWT(k *jwtKeys) string {
	return fmt.Sprintf(`    http-request set-var(txn.bearer) http_auth_bearer
    http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg')
    http-request deny status 401 unless { var(txn.jwt_alg) -m str ES256 }
    http-request deny status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"%s") -m int 1 }
    http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str %s }
    http-request deny status 401 unless { var(txn.bearer),jwt_payload_query('$.aud[0]') -m str %s }
    http-request set-var(txn.now) date()
    http-request deny status 401 if { var(txn.bearer),jwt_payload_query('$.exp','int'),sub(txn.now) -m int lt 0 }
    http-request del-header X-User-ID
    http-request set-header X-User-ID %%[var(txn.bearer),jwt_payload_query('$.sub')]
`, k.PublicKeyFile, k.Issuer, k.Audience)
}
