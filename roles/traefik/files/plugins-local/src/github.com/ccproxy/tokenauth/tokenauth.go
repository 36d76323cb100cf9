// Package tokenauth is a Traefik middleware plugin (run by Yaegi, so standard
// library only) that authenticates ccproxy clients at the edge.
//
// A client presents its token as "Authorization: Bearer <token>" (OpenAI
// SDKs) or "x-api-key: <token>" (Anthropic SDKs). The token is hashed with
// SHA-256 and compared, in constant time, with every configured hash; only
// hashes are ever configured, never tokens. Expiry is checked per request, so
// a token stops working when its time passes without any configuration change.
//
// Any client header a request brings is removed before anything is decided,
// so the access log never names a client that did not authenticate. On
// success the client's credential is replaced by the upstream one (LiteLLM's
// key) and the token's name is put in that header for the rate limiter, the
// in-flight limiter and the access log. Failures get a JSON error body shaped
// so that both OpenAI and Anthropic SDKs show the message:
//
//	401 {"type":"error","error":{"type":"authentication_error","message":"missing bearer token"}}
//	401 {"type":"error","error":{"type":"authentication_error","message":"invalid or expired token"}}
//
// An invalid or expired token is 401 authentication_error, as Anthropic's and
// OpenAI's APIs answer it: clients take it as "get a new key" (Claude Code
// runs its apiKeyHelper again), where 403 means "not allowed".
//
// The tokens come either inline (tokens) or from a JSON file of their own
// (tokensFile: {"tokens": [...]}), which the middleware reads again when it
// has changed, at most once a second (tokensFileRefresh). With the file, a
// token rotation does not change Traefik's dynamic configuration, so Traefik
// does not rebuild its middlewares and the rate-limit buckets and in-flight
// counts of every client are kept. A file that cannot be read or parsed
// leaves the tokens last read in force (none when it never could be: fail
// closed), and the reason goes to stderr.
//
// The request-body limit is the guard plugin's, placed after the rate and
// in-flight limits so that no body is read before they have run.
package tokenauth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DefaultClientHeader is the request header that carries the client's name.
const DefaultClientHeader = "X-Ccproxy-Client"

const (
	bodyMissing = `{"type":"error","error":{"type":"authentication_error","message":"missing bearer token"}}`
	bodyInvalid = `{"type":"error","error":{"type":"authentication_error","message":"invalid or expired token"}}`
	challenge   = `Bearer realm="ccproxy"`
)

// Token is one accepted client token, by the SHA-256 of its value.
type Token struct {
	// Name identifies the client (rate limiting, access log). Several entries
	// may share a name, e.g. the old and new token during a rotation.
	Name string `json:"name,omitempty"`
	// SHA256 is the hex SHA-256 of the token (64 characters).
	SHA256 string `json:"sha256,omitempty"`
	// Expires is an RFC 3339 time after which the token is refused; empty
	// means never.
	Expires string `json:"expires,omitempty"`
}

// Config is the plugin configuration (dynamic configuration,
// http.middlewares.<name>.plugin.tokenauth).
type Config struct {
	Tokens []Token `json:"tokens,omitempty"`
	// UpstreamAuthorization replaces the Authorization header sent upstream;
	// empty removes it.
	UpstreamAuthorization string `json:"upstreamAuthorization,omitempty"`
	// ClientHeader is set to the authenticated token's name (any value sent
	// by the client is removed first).
	ClientHeader string `json:"clientHeader,omitempty"`
	// TokensFile is the absolute path of a JSON file {"tokens": [Token...]},
	// instead of Tokens.
	TokensFile string `json:"tokensFile,omitempty"`
	// TokensFileRefresh is the least time between two reads of TokensFile
	// (a Go duration); empty means DefaultTokensFileRefresh.
	TokensFileRefresh string `json:"tokensFileRefresh,omitempty"`
}

// DefaultTokensFileRefresh is how often, at most, the tokens file is read.
const DefaultTokensFileRefresh = time.Second

// tokensFileDoc is the tokens file's content.
type tokensFileDoc struct {
	Tokens []Token `json:"tokens"`
}

// CreateConfig returns the default configuration.
func CreateConfig() *Config {
	return &Config{
		Tokens:       []Token{},
		ClientHeader: DefaultClientHeader,
	}
}

type entry struct {
	name    string
	hash    []byte
	expires time.Time // zero: never
}

// TokenAuth is the middleware.
type TokenAuth struct {
	next         http.Handler
	name         string
	upstream     string
	clientHeader string

	// The tokens file, when there is one: what was last read from it, when it
	// was last looked at, and the last problem reported (each reported once).
	file     string
	refresh  time.Duration
	mu       sync.Mutex
	entries  []entry
	read     string
	readOnce bool
	checked  time.Time
	problem  string
}

// New builds the middleware; Traefik calls it again with the new configuration
// whenever the dynamic configuration changes.
//
// Traefik does not keep the previous configuration when New fails: the router
// using the middleware goes into error and answers 404 until the configuration
// is fixed. So only errors that make the whole middleware meaningless (a bad
// clientHeader) fail New. A bad token entry (empty name, malformed sha256,
// unparseable expires, a sha256 already used under another name) is left out
// and reported on stderr: that entry authenticates nobody (fail closed) while
// every valid entry keeps working. Yaegi plugins write to Traefik's own
// stdout/stderr (the journal under systemd), not to log.filePath.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if config == nil {
		return nil, errors.New("tokenauth: missing configuration")
	}

	clientHeader := strings.TrimSpace(config.ClientHeader)
	if clientHeader == "" {
		clientHeader = DefaultClientHeader
	}
	if !validHeaderName(clientHeader) {
		return nil, fmt.Errorf("tokenauth: invalid clientHeader %q", clientHeader)
	}
	if strings.EqualFold(clientHeader, "Authorization") || strings.EqualFold(clientHeader, "X-Api-Key") {
		return nil, fmt.Errorf("tokenauth: clientHeader cannot be %q", clientHeader)
	}
	if hasControl(config.UpstreamAuthorization) {
		return nil, errors.New("tokenauth: upstreamAuthorization contains control characters")
	}

	a := &TokenAuth{
		next:         next,
		name:         name,
		upstream:     config.UpstreamAuthorization,
		clientHeader: clientHeader,
	}
	file := strings.TrimSpace(config.TokensFile)
	if file == "" {
		a.entries = a.activate(config.Tokens, "")
		return a, nil
	}
	if len(config.Tokens) > 0 {
		return nil, errors.New("tokenauth: set tokens or tokensFile, not both")
	}
	if !filepath.IsAbs(file) {
		return nil, fmt.Errorf("tokenauth: tokensFile %q is not an absolute path", file)
	}
	a.file = file
	a.refresh = DefaultTokensFileRefresh
	if r := strings.TrimSpace(config.TokensFileRefresh); r != "" {
		d, err := time.ParseDuration(r)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("tokenauth: tokensFileRefresh %q is not a positive duration", r)
		}
		a.refresh = d
	}
	a.load(time.Now())
	return a, nil
}

// activate parses token entries, reports the ones left out, and returns the
// valid ones. source names where they came from ("" for inline).
func (a *TokenAuth) activate(tokens []Token, source string) []entry {
	entries, problems := parseTokens(tokens)
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "tokenauth: middleware %s: %s%s; entry ignored\n", a.name, source, p)
	}
	fmt.Fprintf(os.Stdout, "tokenauth: middleware %s: %s%d token entries active, %d ignored\n",
		a.name, source, len(entries), len(problems))
	return entries
}

// load reads the tokens file if it changed since the last read; called with
// a.mu held, or before the middleware serves. A file that cannot be read or
// parsed keeps the entries in force.
func (a *TokenAuth) load(now time.Time) {
	a.checked = now
	data, err := os.ReadFile(a.file)
	if err != nil {
		a.report(fmt.Sprintf("cannot read tokens file: %v", err))
		return
	}
	if a.readOnce && string(data) == a.read {
		a.problem = "" // readable again: a later problem is reported anew
		return
	}
	var doc tokensFileDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		a.report(fmt.Sprintf("tokens file %s is not valid JSON {\"tokens\": [...]}: %v", a.file, err))
		return
	}
	a.entries = a.activate(doc.Tokens, a.file+": ")
	a.read, a.readOnce, a.problem = string(data), true, ""
}

// report writes a problem with the tokens file once, and says what stays in force.
func (a *TokenAuth) report(problem string) {
	if problem == a.problem {
		return
	}
	a.problem = problem
	fmt.Fprintf(os.Stderr, "tokenauth: middleware %s: %s; the %d token entries last read stay in force\n",
		a.name, problem, len(a.entries))
}

// current returns the entries in force at now, reading the tokens file again
// when the refresh interval has passed.
func (a *TokenAuth) current(now time.Time) []entry {
	if a.file == "" {
		return a.entries
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if now.Sub(a.checked) >= a.refresh {
		a.load(now)
	}
	return a.entries
}

// parseTokens returns the valid entries and one message per invalid one.
// Messages name the entry by index and name, never repeat the hash.
func parseTokens(tokens []Token) ([]entry, []string) {
	entries := make([]entry, 0, len(tokens))
	var problems []string
	owner := make(map[string]string, len(tokens))
	for i, t := range tokens {
		e, err := parseToken(t)
		if err != nil {
			problems = append(problems, fmt.Sprintf("tokens[%d] (name %q): %s", i, t.Name, err.Error()))
			continue
		}
		key := string(e.hash)
		if other, dup := owner[key]; dup && other != e.name {
			problems = append(problems, fmt.Sprintf("tokens[%d] (name %q): same sha256 as an entry named %q", i, t.Name, other))
			continue
		}
		owner[key] = e.name
		entries = append(entries, e)
	}
	return entries, problems
}

func parseToken(t Token) (entry, error) {
	name := strings.TrimSpace(t.Name)
	if name == "" {
		return entry{}, errors.New("empty name")
	}
	if hasControl(name) {
		return entry{}, errors.New("name contains control characters")
	}
	sum := strings.ToLower(strings.TrimSpace(t.SHA256))
	if len(sum) != 2*sha256.Size {
		return entry{}, fmt.Errorf("sha256 must be %d hex characters, got %d", 2*sha256.Size, len(sum))
	}
	hash, err := hex.DecodeString(sum)
	if err != nil {
		return entry{}, errors.New("sha256 is not hex")
	}
	expires, err := parseExpires(t.Expires)
	if err != nil {
		return entry{}, err
	}
	return entry{name: name, hash: hash, expires: expires}, nil
}

// parseExpires accepts RFC 3339 ("2026-01-31T00:00:00Z") and the same with a
// space for the "T" (how Python prints a datetime, e.g. a YAML timestamp that
// went through Ansible's `string` filter). Empty means never.
func parseExpires(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err == nil {
		return t, nil
	}
	t, err2 := time.Parse("2006-01-02 15:04:05Z07:00", s)
	if err2 == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("expires %q is not an RFC 3339 time (e.g. 2026-01-31T00:00:00Z)", s)
}

func (a *TokenAuth) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	// Before any decision: a 401 must not log a client name either.
	req.Header.Del(a.clientHeader)
	token := extractToken(req.Header)
	if token == "" {
		rw.Header().Set("WWW-Authenticate", challenge)
		writeError(rw, http.StatusUnauthorized, bodyMissing)
		return
	}

	now := time.Now()
	name, ok := match(a.current(now), token, now)
	if !ok {
		rw.Header().Set("WWW-Authenticate", challenge)
		writeError(rw, http.StatusUnauthorized, bodyInvalid)
		return
	}

	req.Header.Del("X-Api-Key")
	if a.upstream == "" {
		req.Header.Del("Authorization")
	} else {
		req.Header.Set("Authorization", a.upstream)
	}
	req.Header.Set(a.clientHeader, name)

	a.next.ServeHTTP(rw, req)
}

// match compares the token's hash with every entry (no early exit) and
// returns the name of the first matching entry that has not expired at now.
func match(entries []entry, token string, now time.Time) (string, bool) {
	sum := sha256.Sum256([]byte(token))
	presented := sum[:]

	found := false
	name := ""
	for i := range entries {
		e := &entries[i]
		same := subtle.ConstantTimeCompare(presented, e.hash) == 1
		live := e.expires.IsZero() || now.Before(e.expires)
		if same && live && !found {
			found = true
			name = e.name
		}
	}
	return name, found
}

// extractToken returns the bearer token from Authorization (scheme matched
// case-insensitively, surrounding spaces ignored) or else the x-api-key
// value; "" when neither carries a token.
func extractToken(h http.Header) string {
	if auth := strings.TrimSpace(h.Get("Authorization")); auth != "" {
		if i := strings.IndexAny(auth, " \t"); i > 0 && strings.EqualFold(auth[:i], "Bearer") {
			if token := strings.TrimSpace(auth[i+1:]); token != "" {
				return token
			}
		}
	}
	return strings.TrimSpace(h.Get("X-Api-Key"))
}

func writeError(rw http.ResponseWriter, status int, body string) {
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, _ = rw.Write([]byte(body + "\n"))
}

func hasControl(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return true
		}
	}
	return false
}

// validHeaderName reports whether s is an RFC 7230 token. (Plain ifs: Yaegi
// mis-evaluates a tagless switch whose case lists several conditions.)
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 'a' && r <= 'z' {
			continue
		}
		if r >= 'A' && r <= 'Z' {
			continue
		}
		if r >= '0' && r <= '9' {
			continue
		}
		if strings.ContainsRune(headerPunct, r) {
			continue
		}
		return false
	}
	return true
}

const headerPunct = "!#$%&'*+-.^_|~`"
