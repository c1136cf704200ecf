package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Role is what a token may do. Roles are ordered: each includes the ones
// below it.
type Role int

// Roles.
const (
	RoleViewer   Role = 1 // read jobs, runs, logs, metrics
	RoleOperator Role = 2 // also trigger, cancel and retry runs
	RoleAdmin    Role = 3 // also reload definitions
)

// String returns "viewer", "operator" or "admin" ("none" otherwise).
func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// ParseRole parses "viewer", "operator" or "admin" (case-insensitive).
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	return 0, fmt.Errorf("unknown role %q (want viewer, operator or admin)", s)
}

// MinTokenLength is the shortest secret a token may have.
const MinTokenLength = 16

var tokenNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// Token is an API token: its name (recorded on runs as "api:<name>"), its
// role, and only the SHA-256 hash of its secret. Print it freely: it never
// shows the secret.
type Token struct {
	Name string
	Role Role
	hash [sha256.Size]byte
}

// String returns "name:role".
func (t Token) String() string { return t.Name + ":" + t.Role.String() }

// GoString is String, so that %#v does not print the hash either.
func (t Token) GoString() string { return "api.Token(" + t.String() + ")" }

// NewToken returns a token named name with role, keeping only the hash of
// secret. The name must be 1-64 characters of letters, digits and _ . @ -
// (starting with a letter or digit); the secret must be at least
// MinTokenLength characters without white space or commas. Errors never
// contain the secret.
func NewToken(name string, role Role, secret string) (Token, error) {
	if !tokenNameRE.MatchString(name) {
		return Token{}, fmt.Errorf("token name %q: want 1-64 letters, digits, _ . @ or -", name)
	}
	if role < RoleViewer || role > RoleAdmin {
		return Token{}, fmt.Errorf("token %s: unknown role", name)
	}
	if len(secret) < MinTokenLength {
		return Token{}, fmt.Errorf("token %s: the secret must be at least %d characters", name, MinTokenLength)
	}
	if strings.ContainsAny(secret, " \t\r\n,") {
		return Token{}, fmt.Errorf("token %s: the secret must not contain white space or commas", name)
	}
	return Token{Name: name, Role: role, hash: sha256.Sum256([]byte(secret))}, nil
}

// ParseTokens parses JOBRUNNER_API_TOKENS: comma-separated
// "name:role:secret" entries (the secret may itself contain ':'). Blank
// entries are ignored; "" gives no tokens. Every problem is reported at
// once, naming the entry by position and name, never by its secret.
// Duplicate names and duplicate secrets are errors.
func ParseTokens(s string) ([]Token, error) {
	var (
		out   []Token
		errs  []error
		names = map[string]bool{}
		seen  = map[[sha256.Size]byte]string{}
	)
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.SplitN(entry, ":", 3)
		if len(parts) != 3 {
			errs = append(errs, fmt.Errorf("entry %d: want name:role:token", i+1))
			continue
		}
		role, err := ParseRole(parts[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d (%s): %w", i+1, safeName(parts[0]), err))
			continue
		}
		t, err := NewToken(parts[0], role, parts[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", i+1, err))
			continue
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("entry %d: token name %s is used twice", i+1, t.Name))
			continue
		}
		if other, dup := seen[t.hash]; dup {
			errs = append(errs, fmt.Errorf("entry %d (%s): same secret as token %s", i+1, t.Name, other))
			continue
		}
		names[t.Name] = true
		seen[t.hash] = t.Name
		out = append(out, t)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("api tokens: %w", errors.Join(errs...))
	}
	return out, nil
}

// safeName returns name for an error message when it is a valid name and
// a placeholder otherwise (a garbled entry might hold a secret).
func safeName(name string) string {
	if tokenNameRE.MatchString(name) {
		return name
	}
	return "invalid name"
}

// CheckListen refuses to serve on a non-loopback address without tokens:
// it returns an error unless tokens is non-empty or addr's host is a
// loopback IP or "localhost". An empty host (":8080") listens on every
// interface and is refused too.
func CheckListen(addr string, tokens []Token) error {
	if len(tokens) > 0 {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without API tokens: set JOBRUNNER_API_TOKENS (name:role:token,…) or listen on 127.0.0.1", addr)
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// principal is who makes a request.
type principal struct {
	Name string
	Role Role
	// Anonymous marks the no-token mode (loopback only).
	Anonymous bool
	// Via is where the request came from: "" for the API, "dashboard" for
	// the dashboard's forms.
	Via string
}

// who is what runs record as triggered_by / cancelled_by: "api:NAME", or
// "dashboard:NAME" for the dashboard's forms (NAME is the token's name, or
// "anonymous" in no-token mode).
func (p principal) who() string {
	if p.Via != "" {
		return p.Via + ":" + p.Name
	}
	return "api:" + p.Name
}

// viaDashboard returns p marked as acting through the dashboard.
func (p principal) viaDashboard() principal {
	p.Via = "dashboard"
	return p
}

// anonymousName is the principal name of requests in no-token mode.
const anonymousName = "anonymous"

// match finds the token whose secret is presented, comparing against every
// token's hash in constant time.
func (s *Server) match(secret string) (Token, bool) {
	h := sha256.Sum256([]byte(secret))
	found := -1
	for i := range s.cfg.Tokens {
		if subtle.ConstantTimeCompare(h[:], s.cfg.Tokens[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Token{}, false
	}
	return s.cfg.Tokens[found], true
}

// noAuth reports whether the server runs without tokens.
func (s *Server) noAuth() bool { return len(s.cfg.Tokens) == 0 }

// fromLoopback reports whether the request's peer is a loopback address.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer authenticates an API request by its Authorization header. In
// no-token mode a request from a loopback peer is the anonymous admin and
// any other request is refused.
func (s *Server) bearer(r *http.Request) (principal, error) {
	if s.noAuth() {
		if fromLoopback(r) {
			return principal{Name: anonymousName, Role: RoleAdmin, Anonymous: true}, nil
		}
		return principal{}, errorf(KindUnauthenticated, "", "no API tokens are configured: only loopback clients are served")
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return principal{}, errorf(KindUnauthenticated, "", "an Authorization: Bearer <token> header is required")
	}
	t, ok := s.match(strings.TrimSpace(secret))
	if !ok {
		return principal{}, errorf(KindUnauthenticated, "", "unknown token")
	}
	return principal{Name: t.Name, Role: t.Role}, nil
}

// allow returns a 403 error unless p has at least role.
func allow(p principal, role Role) error {
	if p.Role >= role {
		return nil
	}
	return errorf(KindForbidden, "", "token %s (%s) may not do this: it needs the %s role", p.Name, p.Role, role)
}

// randomID returns n random bytes as hex.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("api: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// SessionTTL is how long a dashboard login lasts.
const SessionTTL = 12 * time.Hour

// maxSessions caps the sessions kept in memory; the oldest go first.
const maxSessions = 10000

// session is a dashboard login, kept in memory only: the cookie holds its
// random id, never the token.
type session struct {
	id      string
	who     principal
	csrf    string
	expires time.Time
}

// sessionStore keeps dashboard sessions in this process's memory (a
// restart logs everyone out; behind a load balancer use sticky sessions).
type sessionStore struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessionStore() *sessionStore { return &sessionStore{m: map[string]*session{}} }

// create starts a session for who.
func (st *sessionStore) create(who principal, now time.Time) *session {
	sess := &session{id: randomID(32), who: who, csrf: randomID(32), expires: now.Add(SessionTTL)}
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.m) >= maxSessions {
		var oldest *session
		for id, x := range st.m {
			if now.After(x.expires) {
				delete(st.m, id)
				continue
			}
			if oldest == nil || x.expires.Before(oldest.expires) {
				oldest = x
			}
		}
		if len(st.m) >= maxSessions && oldest != nil {
			delete(st.m, oldest.id)
		}
	}
	st.m[sess.id] = sess
	return sess
}

// get returns the live session of id.
func (st *sessionStore) get(id string, now time.Time) (*session, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	sess, ok := st.m[id]
	if !ok {
		return nil, false
	}
	if now.After(sess.expires) {
		delete(st.m, id)
		return nil, false
	}
	return sess, true
}

func (st *sessionStore) delete(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.m, id)
}
