package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"go.yaml.in/yaml/v3"
)

// OpenAPIYAML is the OpenAPI 3.1 document of this API. A test checks that it
// and the router name the same routes and that answers match its schemas.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// openAPIJSON is OpenAPIYAML as JSON, made once per process and shared by
// every handler (they only ever write it out). Converting it in each
// NewHandler cost more than the rest of the handler: a fuzz target that
// builds a handler per input managed 2 inputs a second instead of thousands.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("reading the OpenAPI document: %w", err)
	}
	return json.Marshal(doc)
})

func (s *server) routeOpenAPI() error {
	body, err := openAPIJSON()
	if err != nil {
		return err
	}
	s.handle("GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return nil
}

// handle mounts an API route and records its pattern for Routes.
func (s *server) handle(pattern string, fn http.HandlerFunc) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, fn)
}

// Routes lists the API's route patterns ("METHOD /path/{param}") of a
// handler NewHandler returned, Config.Extra left out; nil for any other.
func Routes(h http.Handler) []string {
	if s, ok := h.(*server); ok {
		return slices.Clone(s.routes)
	}
	return nil
}
