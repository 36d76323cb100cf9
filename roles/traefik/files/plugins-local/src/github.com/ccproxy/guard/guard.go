// Package guard is a Traefik middleware plugin (run by Yaegi, so standard
// library only) for the ccproxy edge's own answers. One middleware instance
// does one of three things:
//
//	deny: {status, type, message}   answer every request with that JSON error
//	                                 (the catch-all router: paths outside the
//	                                 API allowlist get 404 and never reach LiteLLM)
//	maxRequestBodyBytes: N           413 for a request body larger than N bytes
//	models: [id, ...]                answer GET /v1/models/{id} from this list,
//	                                 pass every other request on; an id with
//	                                 `*` is a pattern (any characters), as a
//	                                 LiteLLM model_name with `*` is: the answer
//	                                 names the id asked for
//
// The edge answers GET /v1/models/{id} itself because model names may contain
// a slash ("ollama/qwen-fast", sent as /v1/models/ollama%2Fqwen-fast), which
// LiteLLM's route cannot match: it decodes %2F before routing.
//
// The body limit sits after authentication, the per-client rate limit and the
// per-client in-flight limit, so the memory it holds is bounded by clients x
// in-flight x N: a declared Content-Length is checked without reading; a body
// of unknown length (chunked, or HTTP/2 without content-length) is read up to
// N+1 bytes and forwarded with a fixed length. Traefik's buffering middleware
// is not used because it also buffers responses, which breaks streaming.
//
// Error bodies are shaped so that both OpenAI and Anthropic SDKs show them:
//
//	{"type":"error","error":{"type":"not_found_error","message":"..."}}
//
// (tokenauth writes its errors the same way; Yaegi local plugins cannot import
// each other, so the few lines of writeError live in each.)
package guard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

const modelsPrefix = "/v1/models/"

// modelCreated is the "created" LiteLLM reports for every model in /v1/models.
const modelCreated = 1677610602

// Deny is a fixed JSON error answered for every request.
type Deny struct {
	Status  int    `json:"status,omitempty"`
	Type    string `json:"type,omitempty"`
	Message string `json:"message,omitempty"`
}

// Config is the plugin configuration (http.middlewares.<name>.plugin.guard).
// Exactly one of Deny, MaxRequestBodyBytes and Models is set.
type Config struct {
	Deny                Deny     `json:"deny,omitempty"`
	MaxRequestBodyBytes int64    `json:"maxRequestBodyBytes,omitempty"`
	Models              []string `json:"models,omitempty"`
}

// CreateConfig returns the default (empty, invalid) configuration.
func CreateConfig() *Config {
	return &Config{}
}

// Guard is the middleware.
type Guard struct {
	next     http.Handler
	deny     []byte
	status   int
	maxBody  int64
	tooLarge []byte
	broken   []byte
	models   map[string][]byte
	patterns []*regexp.Regexp
}

// New builds the middleware. A configuration that is not exactly one of the
// two modes is an error: Traefik then takes the router out of service (it
// answers 404), which fails closed.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	if config == nil {
		return nil, errors.New("guard: missing configuration")
	}
	denying := config.Deny.Status != 0
	limiting := config.MaxRequestBodyBytes != 0
	listing := len(config.Models) > 0
	modes := 0
	for _, on := range []bool{denying, limiting, listing} {
		if on {
			modes++
		}
	}
	if modes != 1 {
		return nil, fmt.Errorf("guard %s: set exactly one of deny, maxRequestBodyBytes and models", name)
	}
	if listing {
		models := make(map[string][]byte, len(config.Models))
		var patterns []*regexp.Regexp
		for _, id := range config.Models {
			if id == "" {
				return nil, fmt.Errorf("guard %s: empty model id", name)
			}
			if strings.Contains(id, "*") {
				quoted := strings.ReplaceAll(regexp.QuoteMeta(id), `\*`, `.*`)
				patterns = append(patterns, regexp.MustCompile("^"+quoted+"$"))
				continue
			}
			models[id] = modelBody(id)
		}
		return &Guard{next: next, models: models, patterns: patterns}, nil
	}
	if denying {
		if config.Deny.Status < 400 || config.Deny.Status > 599 {
			return nil, fmt.Errorf("guard %s: deny.status must be 4xx or 5xx, got %d", name, config.Deny.Status)
		}
		if config.Deny.Type == "" || config.Deny.Message == "" {
			return nil, fmt.Errorf("guard %s: deny needs type and message", name)
		}
		return &Guard{next: next, status: config.Deny.Status, deny: errorBody(config.Deny.Type, config.Deny.Message)}, nil
	}
	if config.MaxRequestBodyBytes < 0 {
		return nil, fmt.Errorf("guard %s: maxRequestBodyBytes cannot be negative", name)
	}
	return &Guard{
		next:     next,
		maxBody:  config.MaxRequestBodyBytes,
		tooLarge: errorBody("request_too_large", "request body too large"),
		broken:   errorBody("invalid_request_error", "could not read request body"),
	}, nil
}

func modelBody(id string) []byte {
	body, _ := json.Marshal(map[string]interface{}{
		"id": id, "object": "model", "created": modelCreated, "owned_by": "openai",
	})
	return append(body, '\n')
}

// lookup is the answer for a model id: a listed id, or one a pattern matches.
func (g *Guard) lookup(id string) ([]byte, bool) {
	if body, known := g.models[id]; known {
		return body, true
	}
	for _, pattern := range g.patterns {
		if pattern.MatchString(id) {
			return modelBody(id), true
		}
	}
	return nil, false
}

func errorBody(kind, message string) []byte {
	inner := map[string]string{"type": kind, "message": message}
	body, _ := json.Marshal(map[string]interface{}{"type": "error", "error": inner})
	return append(body, '\n')
}

func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if g.deny != nil {
		writeError(rw, g.status, g.deny)
		return
	}
	if g.models != nil {
		g.serveModel(rw, req)
		return
	}
	if g.bodyWithinLimit(rw, req) {
		g.next.ServeHTTP(rw, req)
	}
}

// serveModel answers GET /v1/models/{id} and passes anything else on.
func (g *Guard) serveModel(rw http.ResponseWriter, req *http.Request) {
	escaped := req.URL.EscapedPath()
	if req.Method != http.MethodGet || !strings.HasPrefix(escaped, modelsPrefix) {
		g.next.ServeHTTP(rw, req)
		return
	}
	id, err := url.PathUnescape(strings.TrimPrefix(escaped, modelsPrefix))
	body, known := g.lookup(id)
	if err != nil || !known {
		writeError(rw, http.StatusNotFound, errorBody("not_found_error", "The model does not exist on this gateway."))
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
}

// bodyWithinLimit answers 413 (or 400 for an unreadable body) itself and
// returns false when the request must stop.
func (g *Guard) bodyWithinLimit(rw http.ResponseWriter, req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.ContentLength > g.maxBody {
		writeError(rw, http.StatusRequestEntityTooLarge, g.tooLarge)
		return false
	}
	if req.ContentLength >= 0 {
		return true
	}
	buf, err := io.ReadAll(io.LimitReader(req.Body, g.maxBody+1))
	if err != nil {
		writeError(rw, http.StatusBadRequest, g.broken)
		return false
	}
	if int64(len(buf)) > g.maxBody {
		writeError(rw, http.StatusRequestEntityTooLarge, g.tooLarge)
		return false
	}
	// Forward what was read with a fixed length, no longer chunked.
	req.Body = io.NopCloser(bytes.NewReader(buf))
	req.ContentLength = int64(len(buf))
	req.TransferEncoding = nil
	req.Header.Del("Transfer-Encoding")
	return true
}

func writeError(rw http.ResponseWriter, status int, body []byte) {
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}
