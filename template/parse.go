package template

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// rawTemplate is the serialized form shared by YAML and JSON. Optional
// scalars are pointers so that an omitted key can be told apart from an
// explicit zero and get its default.
type rawTemplate struct {
	Namespace   string    `yaml:"namespace" json:"namespace"`
	Name        string    `yaml:"name" json:"name"`
	Version     string    `yaml:"version" json:"version"`
	Description string    `yaml:"description" json:"description"`
	Steps       []rawStep `yaml:"steps" json:"steps"`
}

type rawStep struct {
	Name      string         `yaml:"name" json:"name"`
	Handler   string         `yaml:"handler" json:"handler"`
	DependsOn []string       `yaml:"depends_on" json:"depends_on"`
	Inputs    map[string]any `yaml:"inputs" json:"inputs"`
	Retry     *rawRetry      `yaml:"retry" json:"retry"`
	Timeout   *string        `yaml:"timeout" json:"timeout"`
}

type rawRetry struct {
	MaxAttempts *int        `yaml:"max_attempts" json:"max_attempts"`
	Retryable   *bool       `yaml:"retryable" json:"retryable"`
	Backoff     *rawBackoff `yaml:"backoff" json:"backoff"`
}

type rawBackoff struct {
	Base *string `yaml:"base" json:"base"`
	Cap  *string `yaml:"cap" json:"cap"`
}

// Parse decodes a YAML template, applies defaults and validates it without
// checking handler names. Unknown keys are errors: a misspelt "max_atempts"
// would otherwise silently fall back to the default.
func Parse(data []byte) (*Template, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw rawTemplate
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parsing template YAML: empty document")
		}
		return nil, fmt.Errorf("parsing template YAML: %w", err)
	}
	// A second document would be ignored by Decode; refuse it rather than
	// register half of what the author wrote.
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("parsing template YAML: %w", err)
		}
		return nil, errors.New("parsing template YAML: more than one YAML document")
	}
	return fromRaw(&raw)
}

// ParseFile parses the YAML template in path.
func ParseFile(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading template file: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("template file %q: %w", path, err)
	}
	return t, nil
}

// LoadDir parses every *.yaml and *.yml file directly inside dir, in file
// name order. Problems in all files are reported together, each naming its
// file, and so is a template key defined by more than one file.
func LoadDir(dir string) ([]*Template, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading template directory: %w", err)
	}
	return load(entries,
		func(name string) string { return filepath.Join(dir, name) },
		os.ReadFile)
}

// LoadFS is LoadDir for a directory of an fs.FS, such as an embed.FS.
func LoadFS(fsys fs.FS, dir string) ([]*Template, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("reading template directory: %w", err)
	}
	return load(entries,
		func(name string) string { return path.Join(dir, name) },
		func(p string) ([]byte, error) { return fs.ReadFile(fsys, p) })
}

func load(entries []fs.DirEntry, join func(string) string, read func(string) ([]byte, error)) ([]*Template, error) {
	// ReadDir already sorts by name; the order only matters for stable
	// results and error messages.
	var (
		tpls  []*Template
		errs  []error
		files = map[string]string{} // key → file that defined it
	)
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			continue
		}
		file := join(e.Name())
		data, err := read(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("template file %q: %w", file, err))
			continue
		}
		t, err := Parse(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("template file %q: %w", file, err))
			continue
		}
		if other, dup := files[t.Key()]; dup {
			errs = append(errs, fmt.Errorf("template file %q: template %s is already defined in %q", file, t.Key(), other))
			continue
		}
		files[t.Key()] = file
		tpls = append(tpls, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return tpls, nil
}

// MarshalJSON encodes the stored form of t. Every field is written, defaults
// included, so that readers of the stored JSON need no knowledge of them.
func (t Template) MarshalJSON() ([]byte, error) {
	raw := rawTemplate{
		Namespace:   t.Namespace,
		Name:        t.Name,
		Version:     t.Version,
		Description: t.Description,
		Steps:       make([]rawStep, len(t.Steps)),
	}
	for i, s := range t.Steps {
		deps := s.DependsOn
		if deps == nil {
			deps = []string{}
		}
		inputs := s.Inputs
		if inputs == nil {
			inputs = map[string]any{}
		}
		maxAttempts, retryable := s.Retry.MaxAttempts, s.Retry.Retryable
		base, capDur, timeout := s.Retry.BackoffBase.String(), s.Retry.BackoffCap.String(), s.Timeout.String()
		raw.Steps[i] = rawStep{
			Name:      s.Name,
			Handler:   s.Handler,
			DependsOn: deps,
			Inputs:    inputs,
			Retry: &rawRetry{
				MaxAttempts: &maxAttempts,
				Retryable:   &retryable,
				Backoff:     &rawBackoff{Base: &base, Cap: &capDur},
			},
			Timeout: &timeout,
		}
	}
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("encoding template %s: %w", t.Key(), err)
	}
	return data, nil
}

// UnmarshalJSON decodes the stored form, applying defaults to omitted fields
// and validating the result (handler names excepted), so that a corrupt row
// is caught when read rather than when its steps are created.
func (t *Template) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var raw rawTemplate
	if err := dec.Decode(&raw); err != nil {
		return fmt.Errorf("decoding template JSON: %w", err)
	}
	parsed, err := fromRaw(&raw)
	if err != nil {
		return err
	}
	*t = *parsed
	return nil
}

// fromRaw converts the serialized form, applies defaults and validates.
func fromRaw(raw *rawTemplate) (*Template, error) {
	t := &Template{
		Namespace:   raw.Namespace,
		Name:        raw.Name,
		Version:     raw.Version,
		Description: raw.Description,
		Steps:       make([]Step, len(raw.Steps)),
	}
	// Conversion problems need the key, which is known only now.
	v := validator{key: t.Key()}
	for i, rs := range raw.Steps {
		s := Step{
			Name:    rs.Name,
			Handler: rs.Handler,
			Retry: Retry{
				MaxAttempts: DefaultMaxAttempts,
				Retryable:   true,
				BackoffBase: DefaultBackoffBase,
				BackoffCap:  DefaultBackoffCap,
			},
			Timeout: DefaultTimeout,
		}
		if len(rs.DependsOn) > 0 {
			s.DependsOn = rs.DependsOn
		}
		s.Inputs = normalizeInputs(rs.Inputs)
		label := stepLabel(i, &s)
		if r := rs.Retry; r != nil {
			if r.MaxAttempts != nil {
				s.Retry.MaxAttempts = *r.MaxAttempts
			}
			if r.Retryable != nil {
				s.Retry.Retryable = *r.Retryable
			}
			if b := r.Backoff; b != nil {
				parseDuration(&v, label, "retry.backoff.base", b.Base, &s.Retry.BackoffBase)
				parseDuration(&v, label, "retry.backoff.cap", b.Cap, &s.Retry.BackoffCap)
			}
		}
		parseDuration(&v, label, "timeout", rs.Timeout, &s.Timeout)
		t.Steps[i] = s
	}
	v.errs = append(v.errs, t.problems(nil)...)
	if err := errors.Join(v.errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// parseDuration sets *dst from src when src is present. A malformed value is
// reported and *dst keeps its default, so that Validate does not report the
// same field a second time as out of range.
func parseDuration(v *validator, step, field string, src *string, dst *time.Duration) {
	if src == nil {
		return
	}
	d, err := time.ParseDuration(*src)
	if err != nil {
		v.add(step, field, "invalid duration %q: want a Go duration such as 500ms, 1.5s or 2m", *src)
		return
	}
	*dst = d
}

// normalizeInputs gives inputs the shape encoding/json decodes with
// UseNumber, so that YAML- and JSON-sourced templates hold identical values
// and a JSON round trip is exact. Inputs that cannot be encoded are returned
// as they are for Validate to report.
func normalizeInputs(in map[string]any) map[string]any {
	if len(in) == 0 {
		return nil
	}
	data, err := json.Marshal(in)
	if err != nil {
		return in
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return in
	}
	return out
}
