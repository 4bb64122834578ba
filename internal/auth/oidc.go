package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Identity is what the identity provider vouched for in a verified ID token.
type Identity struct {
	Issuer  string
	Subject string
	Email   string
	Name    string
}

// ErrOIDCUnavailable: the identity provider's discovery document or keys could not be read.
var ErrOIDCUnavailable = errors.New("the single sign-on provider is unavailable")

// ErrOIDCRejected: the provider's answer did not verify (bad code, token, nonce or audience).
var ErrOIDCRejected = errors.New("the single sign-on answer could not be verified")

// OIDCConfig configures an OIDC relying party.
type OIDCConfig struct {
	Issuer       string
	ClientID     string
	ClientSecret string
	RedirectURL  string // the console's /auth/oidc/callback, registered with the provider
}

// OIDC signs users in through an OpenID Connect provider with the authorization code flow,
// PKCE (S256) and a nonce. It discovers the provider lazily, on first use, and retries
// discovery after a failure, so the console starts even when the provider is down.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC returns a relying party for cfg. It does not contact the provider.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "" {
		return nil, fmt.Errorf("NewOIDC: issuer, client id and redirect URL are required")
	}
	return &OIDC{cfg: cfg}, nil
}

// Issuer is the provider's issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	// The provider keeps the context for fetching keys later; it must outlive this request.
	p, err := oidc.NewProvider(context.WithoutCancel(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOIDCUnavailable, err)
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) oauth2(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     o.cfg.ClientID,
		ClientSecret: o.cfg.ClientSecret,
		RedirectURL:  o.cfg.RedirectURL,
		Endpoint:     p.Endpoint(),
		Scopes:       []string{oidc.ScopeOpenID, "profile", "email"},
	}
}

// OIDCFlow is the per-attempt secret state: it must be kept by the browser's pre-sign-in
// cookie between AuthCodeURL and Exchange, and used once.
type OIDCFlow struct {
	State    string
	Nonce    string
	Verifier string
}

// NewOIDCFlow makes fresh random state, nonce and PKCE verifier.
func NewOIDCFlow() OIDCFlow {
	return OIDCFlow{State: oauth2.GenerateVerifier(), Nonce: oauth2.GenerateVerifier(), Verifier: oauth2.GenerateVerifier()}
}

// AuthCodeURL returns the provider URL to send the browser to.
func (o *OIDC) AuthCodeURL(ctx context.Context, f OIDCFlow) (string, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return "", err
	}
	return o.oauth2(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier)), nil
}

// Exchange trades the authorization code for tokens, verifies the ID token's signature,
// issuer, audience, expiry and nonce, and returns the identity. The caller must already have
// compared the returned state with f.State.
func (o *OIDC) Exchange(ctx context.Context, f OIDCFlow, code string) (Identity, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	tok, err := o.oauth2(p).Exchange(ctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return Identity{}, fmt.Errorf("%w: token exchange: %w", ErrOIDCRejected, err)
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, fmt.Errorf("%w: no id_token in the token response", ErrOIDCRejected)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrOIDCRejected, err)
	}
	if idt.Nonce == "" || idt.Nonce != f.Nonce {
		return Identity{}, fmt.Errorf("%w: nonce mismatch", ErrOIDCRejected)
	}
	var claims struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	}
	if err := idt.Claims(&claims); err != nil {
		return Identity{}, fmt.Errorf("%w: claims: %w", ErrOIDCRejected, err)
	}
	return Identity{Issuer: idt.Issuer, Subject: idt.Subject, Email: claims.Email, Name: claims.Name}, nil
}
