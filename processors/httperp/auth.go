package httperp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/jobrunner/jobrunner/processors"
)

// Auth types of settings.auth.
const (
	AuthNone   = "none"
	AuthBearer = "bearer" // Authorization: Bearer <secret token>
	AuthBasic  = "basic"  // HTTP basic <secret username>:<secret password>
	AuthAPIKey = "apiKey" // headers from secrets (VTEX app key and token)
	AuthOAuth2 = "oauth2" // client credentials (Salesforce B2C)
	AuthLogin  = "login"  // POST a Bearer key for an access_token (Oracle Commerce)
)

// CodeAuthUnavailable is the snooze code when a token endpoint cannot be
// reached or answers 5xx/429: the run comes back later.
const CodeAuthUnavailable = "AUTH_UNAVAILABLE"

// TokenRefreshMargin is how long before its expiry a token is refreshed.
const TokenRefreshMargin = 30 * time.Second

// authSpec is a parsed settings.auth.
type authSpec struct {
	kind string
	// bearer: the secret holding the token; basic: username/password
	// secret names.
	secret, username, password string
	// apiKey: header → secret name.
	headers map[string]string
	// oauth2 / login
	tokenURL     string // may hold {setting} placeholders; "/…" is below baseURL
	clientID     string // secret names
	clientSecret string
	key          string // login: secret holding the application key
	scopes       []string
	style        string // oauth2: basic (default) or params
}

// parseAuth reads settings.auth (a string or a mapping). secrets are the
// connection's secret names (or values); problems are keyed
// "settings.auth…".
func parseAuth(v any, secrets map[string]string, p *problems) authSpec {
	const key = "settings.auth"
	need := func(k, name string) {
		if _, ok := secrets[name]; !ok {
			p.add(key+"."+k, "names secret %q, which the connection does not declare in secrets", name)
		}
	}
	switch x := v.(type) {
	case nil:
		switch {
		case secrets["token"] != "":
			return authSpec{kind: AuthBearer, secret: "token"}
		case secrets["username"] != "":
			return authSpec{kind: AuthBasic, username: "username", password: "password"}
		}
		return authSpec{kind: AuthNone}
	case string:
		switch strings.ToLower(x) {
		case "bearer":
			if secrets["token"] == "" {
				p.add(key, "is bearer but the connection has no token secret")
			}
			return authSpec{kind: AuthBearer, secret: "token"}
		case "basic":
			if secrets["username"] == "" {
				p.add(key, "is basic but the connection has no username secret")
			}
			return authSpec{kind: AuthBasic, username: "username", password: "password"}
		case "none":
			return authSpec{kind: AuthNone}
		}
		p.add(key, "is %q, want bearer, basic, none or a mapping with type apiKey, oauth2 or login", x)
		return authSpec{kind: AuthNone}
	case map[string]any:
		str := func(k, def string) string {
			s, ok := x[k].(string)
			if !ok || s == "" {
				return def
			}
			return s
		}
		a := authSpec{kind: str("type", "")}
		known := map[string][]string{
			AuthNone:   {"type"},
			AuthBearer: {"type", "secret"},
			AuthBasic:  {"type", "username", "password"},
			AuthAPIKey: {"type", "headers"},
			AuthOAuth2: {"type", "tokenURL", "clientID", "clientSecret", "scopes", "style"},
			AuthLogin:  {"type", "tokenURL", "key"},
		}
		keys, ok := known[a.kind]
		if !ok {
			p.add(key+".type", "is %q, want one of none, bearer, basic, apiKey, oauth2, login", a.kind)
			return authSpec{kind: AuthNone}
		}
		unknownKeys(p, key, x, keys)
		switch a.kind {
		case AuthBearer:
			a.secret = str("secret", "token")
			need("secret", a.secret)
		case AuthBasic:
			a.username, a.password = str("username", "username"), str("password", "password")
			need("username", a.username)
		case AuthAPIKey:
			a.headers = strMapOf(p, key+".headers", x["headers"])
			if len(a.headers) == 0 {
				p.add(key+".headers", "required: header name → secret name")
			}
			for h, s := range a.headers {
				if !validHeaderName(h) {
					p.add(key+".headers."+h, "%q is not a valid header name", h)
				}
				need("headers."+h, s)
			}
		case AuthOAuth2, AuthLogin:
			a.tokenURL = str("tokenURL", "")
			if a.tokenURL == "" {
				p.add(key+".tokenURL", "required (the token endpoint: a URL, or a path below baseURL)")
			}
			if a.kind == AuthOAuth2 {
				a.clientID, a.clientSecret = str("clientID", "clientID"), str("clientSecret", "clientSecret")
				need("clientID", a.clientID)
				need("clientSecret", a.clientSecret)
				a.scopes = strList(p, key+".scopes", x["scopes"])
				a.style = str("style", "basic")
				if a.style != "basic" && a.style != "params" {
					p.add(key+".style", "is %q, want basic (HTTP basic auth) or params (client_id/client_secret in the form)", a.style)
				}
			} else {
				a.key = str("key", "applicationKey")
				need("key", a.key)
			}
		}
		return a
	default:
		p.add(key, "want a string or a mapping, got %T", v)
		return authSpec{kind: AuthNone}
	}
}

// secretNames returns the secrets the auth sends, for redaction checks.
func (a authSpec) secretNames() []string {
	var out []string
	for _, s := range []string{a.secret, a.username, a.password, a.clientID, a.clientSecret, a.key} {
		if s != "" {
			out = append(out, s)
		}
	}
	for _, s := range a.headers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// tokenSource holds one connection's access token, shared by all runs of
// the process: one fetch at a time, reused until TokenRefreshMargin
// before its expiry, dropped on a 401.
type tokenSource struct {
	mu      sync.Mutex
	cfg     clientcredentials.Config
	client  *http.Client // for the token request
	tok     *oauth2.Token
	fetches atomic.Int64
}

// bearerTransport adds "Authorization: Bearer key" to the token request
// (Oracle Commerce's login takes the application key that way).
type bearerTransport struct {
	key  string
	base http.RoundTripper
}

func (t *bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+t.key)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", UserAgent)
	return t.base.RoundTrip(r)
}

type uaTransport struct{ base http.RoundTripper }

func (t *uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", UserAgent)
	r.Header.Set("Accept", "application/json")
	return t.base.RoundTrip(r)
}

func newTokenSource(a authSpec, tokenURL string, secrets map[string]string, base *http.Client) *tokenSource {
	ts := &tokenSource{}
	cl := *base
	switch a.kind {
	case AuthLogin:
		ts.cfg = clientcredentials.Config{TokenURL: tokenURL, AuthStyle: oauth2.AuthStyleInParams}
		cl.Transport = &bearerTransport{key: secrets[a.key], base: base.Transport}
	default:
		style := oauth2.AuthStyleInHeader
		if a.style == "params" {
			style = oauth2.AuthStyleInParams
		}
		ts.cfg = clientcredentials.Config{ClientID: secrets[a.clientID], ClientSecret: secrets[a.clientSecret],
			TokenURL: tokenURL, Scopes: a.scopes, AuthStyle: style}
		cl.Transport = &uaTransport{base: base.Transport}
	}
	ts.client = &cl
	return ts
}

// token returns a valid access token, fetching one when there is none or
// it expires within TokenRefreshMargin.
func (ts *tokenSource) token(ctx context.Context) (*oauth2.Token, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != nil && ts.tok.AccessToken != "" && (ts.tok.Expiry.IsZero() || time.Until(ts.tok.Expiry) > TokenRefreshMargin) {
		return ts.tok, nil
	}
	ts.fetches.Add(1)
	tok, err := ts.cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, ts.client))
	if err != nil {
		return nil, err
	}
	ts.tok = tok
	return tok, nil
}

// invalidate drops tok when it is still the current token (a 401 says it
// is no longer accepted).
func (ts *tokenSource) invalidate(tok *oauth2.Token) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != nil && tok != nil && ts.tok.AccessToken == tok.AccessToken {
		ts.tok = nil
	}
}

// tokenCache holds the token sources of a registration, one per
// connection (name, auth spec and credentials).
type tokenCache struct {
	mu      sync.Mutex
	sources map[string]*tokenSource
}

func (c *tokenCache) get(conn string, a authSpec, tokenURL string, secrets map[string]string, base *http.Client) *tokenSource {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%v", conn, a.kind, tokenURL, a.scopes)
	for _, n := range a.secretNames() {
		fmt.Fprintf(h, "\x00%s=%s", n, secrets[n])
	}
	k := hex.EncodeToString(h.Sum(nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	if ts, ok := c.sources[k]; ok {
		return ts
	}
	if c.sources == nil {
		c.sources = map[string]*tokenSource{}
	}
	ts := newTokenSource(a, tokenURL, secrets, base)
	c.sources[k] = ts
	return ts
}

// tokenError says what a failed token fetch means: the endpoint refused
// the credentials (permanent ERP_UNAUTHORIZED) or could not answer (come
// back later, AUTH_UNAVAILABLE).
func tokenError(err error, tokenURL string, red *redactor) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		st := re.Response.StatusCode
		detail := strings.TrimSpace(re.ErrorCode + " " + re.ErrorDescription)
		if detail == "" {
			detail = snippetOf(re.Body, red)
		}
		if st == http.StatusTooManyRequests || st >= 500 {
			return processors.RetryLaterCode(retryAfter(re.Response.Header, time.Now()), CodeAuthUnavailable,
				red.s(fmt.Sprintf("token endpoint %s answered %s: %s", tokenURL, statusText(st), detail)))
		}
		return processors.Permanent(CodeUnauthorized, red.s(fmt.Sprintf("token endpoint %s refused the connection's credentials (%s): %s", tokenURL, statusText(st), detail)))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeUnavailable, Message: red.s("fetching an access token: " + err.Error()), Err: err}
	}
	msg := err.Error()
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		msg = strings.TrimPrefix(msg, "oauth2: ")
	}
	return processors.RetryLaterCode(0, CodeAuthUnavailable, red.s(fmt.Sprintf("fetching an access token from %s: %s", tokenURL, msg)))
}

func snippetOf(b []byte, red *redactor) string {
	s := strings.TrimSpace(string(b))
	if len(s) > snippetBytes {
		s = s[:snippetBytes] + "…"
	}
	return red.s(s)
}
