package guard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// sink records what reached the next handler.
type sink struct {
	called bool
	body   string
	length int64
}

func (s *sink) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	s.called = true
	b, _ := io.ReadAll(req.Body)
	s.body, s.length = string(b), req.ContentLength
	rw.WriteHeader(http.StatusOK)
}

func build(t *testing.T, cfg *Config) (http.Handler, *sink) {
	t.Helper()
	next := &sink{}
	h, err := New(context.Background(), next, cfg, "test")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h, next
}

func errorType(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var body struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("body %q: %v", rec.Body.String(), err)
	}
	if body.Type != "error" || body.Error.Message == "" {
		t.Fatalf("body = %+v", body)
	}
	return body.Error.Type
}

func TestDenyAnswersEveryRequest(t *testing.T) {
	h, next := build(t, &Config{Deny: Deny{Status: 404, Type: "not_found_error", Message: "not found"}})
	for _, target := range []string{"/v1/model/info", "/v1/mcp/sessions", "/", "/v1/chat/completions?x=1"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "http://gateway"+target, strings.NewReader("{}")))
		if rec.Code != 404 || errorType(t, rec) != "not_found_error" {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body.String())
		}
	}
	if next.called {
		t.Fatal("a denied request reached the next handler")
	}
}

func post(h http.Handler, body string, chunked bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "http://gateway/v1/chat/completions", strings.NewReader(body))
	if chunked {
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBodyLimit(t *testing.T) {
	for _, chunked := range []bool{false, true} {
		h, next := build(t, &Config{MaxRequestBodyBytes: 10})
		rec := post(h, strings.Repeat("x", 11), chunked)
		if rec.Code != http.StatusRequestEntityTooLarge || errorType(t, rec) != "request_too_large" {
			t.Fatalf("chunked=%v: %d", chunked, rec.Code)
		}
		if next.called {
			t.Fatalf("chunked=%v: oversized body reached the next handler", chunked)
		}
		rec = post(h, strings.Repeat("y", 10), chunked)
		if rec.Code != 200 || next.body != strings.Repeat("y", 10) || next.length != 10 {
			t.Fatalf("chunked=%v: %d, body %q, length %d", chunked, rec.Code, next.body, next.length)
		}
	}
}

func TestInvalidConfigRejected(t *testing.T) {
	for _, cfg := range []*Config{
		nil,
		{},
		{MaxRequestBodyBytes: -1},
		{MaxRequestBodyBytes: 10, Deny: Deny{Status: 404, Type: "x", Message: "y"}},
		{Deny: Deny{Status: 200, Type: "x", Message: "y"}},
		{Deny: Deny{Status: 404}},
		{Models: []string{"gpt-4"}, MaxRequestBodyBytes: 10},
		{Models: []string{""}},
	} {
		if _, err := New(context.Background(), &sink{}, cfg, "test"); err == nil {
			t.Fatalf("config %+v accepted", cfg)
		}
	}
}

func TestModelPatternsAnswerMatchingIDs(t *testing.T) {
	h, next := build(t, &Config{Models: []string{"gpt-4", "claude-*"}})
	for target, want := range map[string]int{
		"/v1/models/claude-opus-4-8":          200,
		"/v1/models/claude-haiku-4-5-2025100": 200,
		"/v1/models/claude-":                  200,
		"/v1/models/claude":                   404,
		"/v1/models/xclaude-opus":             404,
		"/v1/models/gpt-4":                    200,
		"/v1/models/gpt-4o":                   404,
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gateway"+target, nil))
		if rec.Code != want {
			t.Fatalf("%s: %d, want %d", target, rec.Code, want)
		}
		if want == 200 && !strings.Contains(rec.Body.String(), `"id":"`+strings.TrimPrefix(target, "/v1/models/")+`"`) {
			t.Fatalf("%s: body %s does not name the id asked for", target, rec.Body.String())
		}
	}
	if next.called {
		t.Fatal("a model lookup reached the next handler")
	}
}

func TestModelsAnswersKnownIDsAndPassesTheRest(t *testing.T) {
	h, next := build(t, &Config{Models: []string{"gpt-4", "ollama/qwen-fast"}})
	for target, want := range map[string]string{
		"/v1/models/gpt-4":              "gpt-4",
		"/v1/models/ollama%2Fqwen-fast": "ollama/qwen-fast",
		"/v1/models/ollama%2fqwen-fast": "ollama/qwen-fast",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gateway"+target, nil))
		var model struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &model); err != nil || rec.Code != 200 || model.ID != want || model.Object != "model" {
			t.Fatalf("%s: %d %s", target, rec.Code, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://gateway/v1/models/unknown", nil))
	if rec.Code != 404 || errorType(t, rec) != "not_found_error" {
		t.Fatalf("unknown model: %d", rec.Code)
	}
	if next.called {
		t.Fatal("a model lookup reached the next handler")
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "http://gateway/v1/chat/completions", strings.NewReader("{}")))
	if !next.called {
		t.Fatal("another request was not passed on")
	}
}
