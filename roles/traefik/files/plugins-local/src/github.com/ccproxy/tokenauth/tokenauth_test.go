package tokenauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func hashOf(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// seen records the request headers that reached the next handler.
type seen struct {
	called bool
	header http.Header
}

func (s *seen) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	s.called = true
	s.header = req.Header.Clone()
	rw.WriteHeader(http.StatusOK)
}

func newAuth(t *testing.T, cfg *Config) (http.Handler, *seen) {
	t.Helper()
	next := &seen{}
	h, err := New(context.Background(), next, cfg, "test")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, next
}

func baseConfig() *Config {
	cfg := CreateConfig()
	cfg.UpstreamAuthorization = "Bearer upstream-key"
	cfg.Tokens = []Token{
		{Name: "alice", SHA256: hashOf("alice-token")},
		{Name: "bob", SHA256: hashOf("bob-old"), Expires: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		{Name: "bob", SHA256: hashOf("bob-new"), Expires: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	}
	return cfg
}

func do(h http.Handler, headers map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://gateway/v1/chat/completions", nil)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type errorBody struct {
	Type  string `json:"type"`
	Error struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
}

func decodeError(t *testing.T, rec *httptest.ResponseRecorder) errorBody {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q, want application/json", ct)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	return body
}

func TestCreateConfigDefaults(t *testing.T) {
	cfg := CreateConfig()
	if cfg.ClientHeader != DefaultClientHeader {
		t.Fatalf("ClientHeader = %q", cfg.ClientHeader)
	}
	if cfg.Tokens == nil || len(cfg.Tokens) != 0 {
		t.Fatalf("Tokens = %#v", cfg.Tokens)
	}
}

func TestMissingToken(t *testing.T) {
	h, next := newAuth(t, baseConfig())
	for _, headers := range []map[string]string{
		{},
		{"Authorization": "Bearer"},
		{"Authorization": "Bearer    "},
		{"Authorization": "Basic YWxpY2U6eA=="},
		{"X-Api-Key": "  "},
	} {
		rec := do(h, headers)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("%v: status %d, want 401", headers, rec.Code)
		}
		if got := rec.Header().Get("WWW-Authenticate"); got != `Bearer realm="ccproxy"` {
			t.Fatalf("WWW-Authenticate = %q", got)
		}
		body := decodeError(t, rec)
		if body.Error.Type != "authentication_error" || body.Error.Message == "" {
			t.Fatalf("body = %+v", body)
		}
	}
	if next.called {
		t.Fatal("next handler called without a token")
	}
}

func TestInvalidTokenNotEchoed(t *testing.T) {
	h, next := newAuth(t, baseConfig())
	rec := do(h, map[string]string{"Authorization": "Bearer not-a-real-token"})
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
	body := decodeError(t, rec)
	if body.Error.Type != "authentication_error" {
		t.Fatalf("body = %+v", body)
	}
	if strings.Contains(rec.Body.String(), "not-a-real-token") {
		t.Fatal("response echoes the token")
	}
	if next.called {
		t.Fatal("next handler called with a bad token")
	}
}

func TestValidBearerRewritesHeaders(t *testing.T) {
	h, next := newAuth(t, baseConfig())
	rec := do(h, map[string]string{
		"Authorization":    "Bearer alice-token",
		"X-Api-Key":        "something-else",
		"X-Ccproxy-Client": "root",
	})
	if rec.Code != http.StatusOK || !next.called {
		t.Fatalf("status %d, next called %v", rec.Code, next.called)
	}
	if got := next.header.Get("Authorization"); got != "Bearer upstream-key" {
		t.Fatalf("upstream Authorization = %q", got)
	}
	if got := next.header.Values("X-Ccproxy-Client"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("client header = %q", got)
	}
	if _, ok := next.header["X-Api-Key"]; ok {
		t.Fatal("x-api-key forwarded upstream")
	}
}

func TestSchemeAndSpacing(t *testing.T) {
	h, _ := newAuth(t, baseConfig())
	for _, v := range []string{"bearer alice-token", "BEARER alice-token", "  Bearer    alice-token  ", "Bearer\talice-token"} {
		if rec := do(h, map[string]string{"Authorization": v}); rec.Code != http.StatusOK {
			t.Fatalf("%q: status %d", v, rec.Code)
		}
	}
	if rec := do(h, map[string]string{"Authorization": "Bearer alice-token extra"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("token with trailing word: status %d", rec.Code)
	}
}

func TestAPIKeyHeader(t *testing.T) {
	h, next := newAuth(t, baseConfig())
	rec := do(h, map[string]string{"x-api-key": "alice-token"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if next.header.Get("X-Api-Key") != "" || next.header.Get("Authorization") != "Bearer upstream-key" {
		t.Fatalf("headers upstream: %v", next.header)
	}
}

func TestAuthorizationPreferredOverAPIKey(t *testing.T) {
	h, _ := newAuth(t, baseConfig())
	rec := do(h, map[string]string{"Authorization": "Bearer wrong", "X-Api-Key": "alice-token"})
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401 (Authorization wins)", rec.Code)
	}
	rec = do(h, map[string]string{"Authorization": "Basic abc", "X-Api-Key": "alice-token"})
	if rec.Code != http.StatusOK {
		t.Fatalf("non-bearer Authorization + x-api-key: status %d, want 200", rec.Code)
	}
}

func TestExpiry(t *testing.T) {
	h, next := newAuth(t, baseConfig())
	if rec := do(h, map[string]string{"Authorization": "Bearer bob-old"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("expired token: status %d", rec.Code)
	}
	if rec := do(h, map[string]string{"Authorization": "Bearer bob-new"}); rec.Code != http.StatusOK {
		t.Fatalf("rotated token: status %d", rec.Code)
	}
	if next.header.Get("X-Ccproxy-Client") != "bob" {
		t.Fatalf("client = %q", next.header.Get("X-Ccproxy-Client"))
	}
}

func TestExpiryCheckedAtRequestTime(t *testing.T) {
	cfg := baseConfig()
	cfg.Tokens = []Token{{Name: "soon", SHA256: hashOf("soon-token"), Expires: time.Now().Add(time.Minute).Format(time.RFC3339)}}
	h, _ := newAuth(t, cfg)
	a := h.(*TokenAuth)
	if _, ok := match(a.current(time.Now()), "soon-token", time.Now()); !ok {
		t.Fatal("not valid before expiry")
	}
	if _, ok := match(a.current(time.Now()), "soon-token", time.Now().Add(2*time.Minute)); ok {
		t.Fatal("still valid after expiry")
	}
}

func TestEmptyUpstreamStripsAuthorization(t *testing.T) {
	cfg := baseConfig()
	cfg.UpstreamAuthorization = ""
	cfg.ClientHeader = "X-Who"
	h, next := newAuth(t, cfg)
	rec := do(h, map[string]string{"Authorization": "Bearer alice-token", "X-Who": "mallory"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if _, ok := next.header["Authorization"]; ok {
		t.Fatal("Authorization forwarded")
	}
	if got := next.header.Values("X-Who"); len(got) != 1 || got[0] != "alice" {
		t.Fatalf("X-Who = %q", got)
	}
}

func TestUppercaseHashAccepted(t *testing.T) {
	cfg := baseConfig()
	cfg.Tokens = []Token{{Name: "up", SHA256: strings.ToUpper(hashOf("up-token"))}}
	h, _ := newAuth(t, cfg)
	if rec := do(h, map[string]string{"Authorization": "Bearer up-token"}); rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
}

func TestExpiresFormats(t *testing.T) {
	for _, s := range []string{"2030-01-02T03:04:05Z", "2030-01-02T03:04:05.123+02:00", "2030-01-02 03:04:05+00:00"} {
		if _, err := parseExpires(s); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"2030-01-02", "2030-01-02T03:04:05", "tomorrow"} {
		if _, err := parseExpires(s); err == nil {
			t.Fatalf("%q accepted", s)
		}
	}
}

func TestBadEntriesIgnoredOthersKept(t *testing.T) {
	cfg := baseConfig()
	cfg.Tokens = append(cfg.Tokens,
		Token{Name: "short", SHA256: "abc"},
		Token{Name: "nothex", SHA256: strings.Repeat("zz", 32)},
		Token{Name: "", SHA256: hashOf("anon")},
		Token{Name: "when", SHA256: hashOf("when-token"), Expires: "next week"},
		Token{Name: "copycat", SHA256: hashOf("alice-token")},
		Token{Name: "alice", SHA256: hashOf("alice-token")}, // same name: fine
	)
	h, next := newAuth(t, cfg)
	a := h.(*TokenAuth)
	if len(a.entries) != 4 {
		t.Fatalf("%d entries kept, want 4", len(a.entries))
	}
	for _, tok := range []string{"anon", "when-token"} {
		if rec := do(h, map[string]string{"Authorization": "Bearer " + tok}); rec.Code != http.StatusUnauthorized {
			t.Fatalf("%s: status %d, want 401", tok, rec.Code)
		}
	}
	if rec := do(h, map[string]string{"Authorization": "Bearer alice-token"}); rec.Code != http.StatusOK {
		t.Fatalf("alice: status %d", rec.Code)
	}
	if next.header.Get("X-Ccproxy-Client") != "alice" {
		t.Fatalf("duplicate hash re-attributed to %q", next.header.Get("X-Ccproxy-Client"))
	}
}

func TestNoTokensDeniesEverything(t *testing.T) {
	cfg := CreateConfig()
	h, next := newAuth(t, cfg)
	if rec := do(h, map[string]string{"Authorization": "Bearer anything"}); rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", rec.Code)
	}
	if next.called {
		t.Fatal("next called")
	}
}

func TestInvalidConfigRejected(t *testing.T) {
	for _, cfg := range []*Config{
		nil,
		{ClientHeader: "X Bad"},
		{ClientHeader: "Authorization"},
		{ClientHeader: "x-api-key"},
		{UpstreamAuthorization: "Bearer a\r\nX-Evil: 1"},
	} {
		if _, err := New(context.Background(), &seen{}, cfg, "test"); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestSpoofedClientHeaderRemovedBeforeDeciding(t *testing.T) {
	h, _ := newAuth(t, baseConfig())
	for _, headers := range []map[string]string{
		{"X-Ccproxy-Client": "spoofed"},
		{"X-Ccproxy-Client": "spoofed", "Authorization": "Bearer wrong-token"},
	} {
		req := httptest.NewRequest(http.MethodPost, "http://gateway/v1/chat/completions", nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
		// The access log reads the request's headers after the middleware ran.
		if got := req.Header.Get("X-Ccproxy-Client"); got != "" {
			t.Fatalf("%v: client header left as %q on a refused request", headers, got)
		}
	}
}

// The expires cases shared with token_spec.py, the Python definition used by
// the control node and the edge's config check: both must agree.
func TestExpiresAgreesWithTokenSpec(t *testing.T) {
	raw, err := os.ReadFile("testdata/expires.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases struct {
		Valid   []string `json:"valid"`
		Invalid []string `json:"invalid"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases.Valid) == 0 || len(cases.Invalid) == 0 {
		t.Fatal("no cases")
	}
	for _, s := range cases.Valid {
		if _, err := parseExpires(s); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
	for _, s := range cases.Invalid {
		if _, err := parseExpires(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

// writeTokensFile replaces path atomically, as Ansible's template module does.
func writeTokensFile(t *testing.T, path string, tokens []Token) {
	t.Helper()
	data, err := json.Marshal(tokensFileDoc{Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	writeRaw(t, path, string(data))
}

func writeRaw(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func fileConfig(t *testing.T, tokens []Token) (*Config, string) {
	t.Helper()
	path := t.TempDir() + "/tokens.json"
	writeTokensFile(t, path, tokens)
	cfg := CreateConfig()
	cfg.UpstreamAuthorization = "Bearer upstream-key"
	cfg.TokensFile = path
	return cfg, path
}

func accepted(a *TokenAuth, token string, now time.Time) bool {
	_, ok := match(a.current(now), token, now)
	return ok
}

func TestTokensFileIsReadAgainOnlyAfterTheRefresh(t *testing.T) {
	cfg, path := fileConfig(t, []Token{{Name: "alice", SHA256: hashOf("alice-token")}})
	h, next := newAuth(t, cfg)
	if rec := do(h, map[string]string{"Authorization": "Bearer alice-token"}); rec.Code != http.StatusOK {
		t.Fatalf("token from the file: status %d", rec.Code)
	}
	if next.header.Get("X-Ccproxy-Client") != "alice" {
		t.Fatalf("client = %q", next.header.Get("X-Ccproxy-Client"))
	}
	a := h.(*TokenAuth)
	start := a.checked
	writeTokensFile(t, path, []Token{{Name: "carol", SHA256: hashOf("carol-token")}})
	if accepted(a, "carol-token", start.Add(DefaultTokensFileRefresh/2)) {
		t.Fatal("file read again before the refresh interval")
	}
	later := start.Add(DefaultTokensFileRefresh)
	if !accepted(a, "carol-token", later) {
		t.Fatal("added token not accepted after the refresh interval")
	}
	if accepted(a, "alice-token", later) {
		t.Fatal("token removed from the file still accepted")
	}
}

func TestBadTokensFileKeepsTheTokensInForce(t *testing.T) {
	cfg, path := fileConfig(t, []Token{{Name: "alice", SHA256: hashOf("alice-token")}})
	h, _ := newAuth(t, cfg)
	a := h.(*TokenAuth)
	now := a.checked
	for i, text := range []string{`{"tokens": [`, `[]`} {
		writeRaw(t, path, text)
		now = now.Add(time.Hour)
		if !accepted(a, "alice-token", now) {
			t.Fatalf("case %d: a bad file replaced the tokens in force", i)
		}
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if !accepted(a, "alice-token", now.Add(time.Hour)) {
		t.Fatal("a removed file replaced the tokens in force")
	}
	if a.problem == "" || strings.Contains(a.problem, hashOf("alice-token")) {
		t.Fatalf("problem %q", a.problem)
	}
}

func TestMissingTokensFileFailsClosedUntilItAppears(t *testing.T) {
	path := t.TempDir() + "/tokens.json"
	cfg := CreateConfig()
	cfg.TokensFile = path
	h, next := newAuth(t, cfg)
	if rec := do(h, map[string]string{"Authorization": "Bearer alice-token"}); rec.Code != http.StatusUnauthorized || next.called {
		t.Fatalf("no file: status %d, reached next %v", rec.Code, next.called)
	}
	writeTokensFile(t, path, []Token{{Name: "alice", SHA256: hashOf("alice-token")}})
	a := h.(*TokenAuth)
	if !accepted(a, "alice-token", a.checked.Add(DefaultTokensFileRefresh)) {
		t.Fatal("token not accepted once the file appeared")
	}
}

func TestTokensFileSettingsAreChecked(t *testing.T) {
	cases := map[string]func(*Config){
		"both":     func(c *Config) { c.Tokens = []Token{{Name: "alice", SHA256: hashOf("alice-token")}} },
		"relative": func(c *Config) { c.TokensFile = "tokens.json" },
		"refresh":  func(c *Config) { c.TokensFileRefresh = "soon" },
		"negative": func(c *Config) { c.TokensFileRefresh = "-1s" },
	}
	for name, change := range cases {
		cfg, _ := fileConfig(t, []Token{{Name: "alice", SHA256: hashOf("alice-token")}})
		change(cfg)
		if _, err := New(context.Background(), &seen{}, cfg, "test"); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}
