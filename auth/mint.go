package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/fastgate/fastgate/config"
	"github.com/golang-jwt/jwt/v5"
)

// Mint returns a token for sub, valid from now for ttl, that a Verifier
// built from the same cfg accepts. It is for `fastgate token` and tests;
// the gateway never signs anything.
//
// With signing_key_file (a PEM private key: PKCS#8, PKCS#1 RSA or SEC 1
// EC) it signs with the first configured asymmetric algorithm that fits
// the key, under the kid of the matching public key in jwks_file or
// public_key_files (else the signing key file's name without extension).
// Without it, and with an HS* algorithm configured, it signs with the
// first HS* algorithm and the secret from hmac_secret_env, without kid.
// The claims are sub, iss (when configured), the first configured aud,
// iat, nbf (both now) and exp (now+ttl).
func Mint(cfg *config.JWT, sub string, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case cfg == nil:
		return "", errors.New("auth: no [auth.jwt] config")
	case !validSubject(sub):
		return "", fmt.Errorf("auth: subject %q: want 1..%d printable ASCII bytes", sub, MaxSubjectSize)
	case ttl <= 0:
		return "", fmt.Errorf("auth: ttl %v: must be positive", ttl)
	}
	alg, kid, signer, err := mintKey(cfg)
	if err != nil {
		return "", err
	}
	claims := jwt.RegisteredClaims{
		Subject:   sub,
		Issuer:    cfg.Issuer,
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
	}
	if len(cfg.Audience) > 0 {
		claims.Audience = jwt.ClaimStrings{cfg.Audience[0]}
	}
	t := jwt.NewWithClaims(jwt.GetSigningMethod(alg), claims)
	if kid != "" {
		t.Header["kid"] = kid
	}
	s, err := t.SignedString(signer)
	if err != nil {
		return "", fmt.Errorf("auth: sign %s: %w", alg, err)
	}
	return s, nil
}

// mintKey chooses the algorithm, kid and signing key for Mint.
func mintKey(cfg *config.JWT) (alg, kid string, signer any, err error) {
	if cfg.SigningKeyFile == "" {
		for _, a := range cfg.Algorithms {
			if isHMAC(a) {
				secret, err := hmacSecret(cfg.HMACSecretEnv)
				return a, "", secret, err
			}
		}
		return "", "", nil, errors.New("auth: minting needs signing_key_file, or an HS* algorithm and hmac_secret_env")
	}
	priv, err := loadPrivateKey(cfg.SigningKeyFile)
	if err != nil {
		return "", "", nil, err
	}
	pub := &key{pub: priv.Public()}
	for _, a := range cfg.Algorithms {
		if pub.fits(a) {
			alg = a
			break
		}
	}
	if alg == "" {
		return "", "", nil, fmt.Errorf("auth: %s: no configured algorithm fits a %T", cfg.SigningKeyFile, priv.Public())
	}
	kid, err = mintKID(cfg, priv.Public())
	return alg, kid, priv, err
}

// mintKID finds the kid under which pub is configured.
func mintKID(cfg *config.JWT, pub crypto.PublicKey) (string, error) {
	keys, err := loadStatic(cfg.JWKSFile, cfg.PublicKeyFiles, "", false)
	if err != nil {
		return "", err
	}
	want := pub.(interface{ Equal(crypto.PublicKey) bool })
	for _, k := range keys {
		if k.kid != "" && want.Equal(k.pub) {
			return k.kid, nil
		}
	}
	return kidFromPath(cfg.SigningKeyFile), nil
}

// loadPrivateKey reads the first private key block of a PEM file.
func loadPrivateKey(path string) (crypto.Signer, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("auth: %s: no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block", path)
		}
		var k any
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue // "EC PARAMETERS" from openssl ecparam, certificates...
		}
		if err != nil {
			return nil, fmt.Errorf("auth: %s: %w", path, err)
		}
		switch k := k.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("auth: %s: unsupported private key type %T", path, k)
	}
}
