package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	configfiles "github.com/taskerhq/tasker/config"
)

// DefaultEnv is the environment used when neither LoadOptions.Env nor
// TASKER_ENV names one. It is production so that a deployed server or worker
// started without TASKER_ENV logs at info, not debug; `tasker dev` asks for
// development itself.
const DefaultEnv = "production"

// DefaultDir is where Load looks for configuration when LoadOptions.Dir is
// empty, relative to the working directory.
const DefaultDir = "config/tasker"

// FromDefault is Source.From for a key no file or variable set.
const FromDefault = "default"

// embeddedPrefix starts Source.From for the files compiled into the binary.
const embeddedPrefix = "embedded:config/tasker/"

// Source says where one key's final value came from.
type Source struct {
	Key   string // dotted TOML key, e.g. telemetry.otlp.endpoint
	Value string // the value as it would be written in TOML, unquoted
	// From is "default", a file path (or "embedded:config/tasker/…" for
	// the files compiled into the binary), or "env NAME".
	From string
}

// LoadOptions tells Load where to look.
type LoadOptions struct {
	// Dir holds base/ and environments/. Empty means ./config/tasker when it
	// exists, else the files embedded in the binary.
	Dir string
	// Env selects environments/<Env>/. Empty means $TASKER_ENV, else
	// DefaultEnv (production).
	Env string
	// Getenv reads environment variables; nil means os.Getenv. Tests pass a
	// map lookup so they neither depend on nor change the process
	// environment.
	Getenv func(string) string
	// Environ lists NAME=value pairs and is used only to discover
	// TASKER_LOG_LEVEL_<COMPONENT> variables. Nil means os.Environ when
	// Getenv is nil too; with a custom Getenv and no Environ, only
	// components already named in the files are looked up.
	Environ func() []string
}

// envNameRE keeps TASKER_ENV from reaching outside environments/ (a "../"
// would otherwise pick any directory).
var envNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Load builds the configuration from defaults, the base files, the
// environment's files and the environment variables, validates it, and
// returns it with the origin of every key.
func Load(opts LoadOptions) (*Config, []Source, error) {
	getenv, environ := opts.Getenv, opts.Environ
	if getenv == nil {
		getenv = os.Getenv
		if environ == nil {
			environ = os.Environ
		}
	}
	env, envFrom := opts.Env, "LoadOptions.Env"
	if env == "" {
		env, envFrom = getenv("TASKER_ENV"), "env TASKER_ENV"
	}
	if env == "" {
		env = DefaultEnv
	}
	if !envNameRE.MatchString(env) {
		return nil, nil, fmt.Errorf("%s: %q is not an environment name (letters, digits, '.', '-', '_')", envFrom, env)
	}

	files, err := openFiles(opts.Dir)
	if err != nil {
		return nil, nil, err
	}
	cfg := Default()
	cfg.sources = map[string]string{}
	if err := loadLayer(cfg, files, "base", ""); err != nil {
		return nil, nil, err
	}
	if err := loadLayer(cfg, files, path.Join("environments", env), envFrom); err != nil {
		return nil, nil, err
	}
	if err := applyEnv(cfg, getenv, environ); err != nil {
		return nil, nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	return cfg, cfg.sourceList(), nil
}

// configFiles is a directory of configuration files and how to name them in
// provenance and errors.
type configFiles struct {
	fsys  fs.FS
	label func(rel string) string
	where string // for errors about the directory itself
}

func openFiles(dir string) (configFiles, error) {
	if dir == "" {
		if st, err := os.Stat(DefaultDir); err == nil && st.IsDir() {
			dir = DefaultDir
		} else {
			sub, err := fs.Sub(configfiles.FS, "tasker")
			if err != nil {
				return configFiles{}, fmt.Errorf("embedded config files: %w", err)
			}
			return configFiles{
				fsys:  sub,
				label: func(rel string) string { return embeddedPrefix + rel },
				where: strings.TrimSuffix(embeddedPrefix, "/"),
			}, nil
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return configFiles{}, fmt.Errorf("config directory: %w", err)
	}
	if !st.IsDir() {
		return configFiles{}, fmt.Errorf("config directory %s is not a directory", dir)
	}
	return configFiles{
		fsys:  os.DirFS(dir),
		label: func(rel string) string { return filepath.Join(dir, filepath.FromSlash(rel)) },
		where: dir,
	}, nil
}

// loadLayer decodes every *.toml file in rel, in name order, over cfg. A
// layer's files split one configuration between them, so a key set in two
// files of the same layer is an error rather than a silent winner.
// envFrom is non-empty for the environment layer, whose directory must exist:
// a misspelt TASKER_ENV should stop the process, not run it on base values.
func loadLayer(cfg *Config, files configFiles, rel, envFrom string) error {
	entries, err := fs.ReadDir(files.fsys, rel)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if envFrom != "" {
				known, _ := fs.ReadDir(files.fsys, "environments")
				var names []string
				for _, e := range known {
					if e.IsDir() {
						names = append(names, e.Name())
					}
				}
				return fmt.Errorf("%s: environment %q has no directory %s (known: %s)",
					envFrom, path.Base(rel), files.label(rel), strings.Join(names, ", "))
			}
			return fmt.Errorf("config directory %s has no %s/ directory", files.where, rel)
		}
		return fmt.Errorf("read %s: %w", files.label(rel), err)
	}
	setIn := map[string]string{} // key → file, within this layer
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".toml") {
			continue
		}
		name := files.label(path.Join(rel, e.Name()))
		data, err := fs.ReadFile(files.fsys, path.Join(rel, e.Name()))
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
		md, err := toml.Decode(string(data), cfg)
		if err != nil {
			return decodeError(name, err)
		}
		if err := unknownKeys(name, md); err != nil {
			return err
		}
		for _, k := range md.Keys() {
			// Joined unquoted, as sourceList names map entries: a map key
			// with a dot ("deployment.environment.name") is quoted by
			// Key.String and would never match.
			key := strings.Join(k, ".")
			// Tables ("Hash") are only containers and may be opened by
			// several files; their provenance matters only for an empty
			// map, whose own key is all there is to report.
			if md.Type(k...) == "Hash" {
				cfg.sources[key] = name
				continue
			}
			if prev, ok := setIn[key]; ok {
				return fmt.Errorf("%s: %s is also set in %s; set each key once per directory", name, key, prev)
			}
			setIn[key] = name
			cfg.sources[key] = name
		}
	}
	return nil
}

// tomlTypeErrRE matches the decoder's type-mismatch errors, which are plain
// errors rather than toml.ParseError.
var tomlTypeErrRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)

// decodeError rewrites the decoder's errors into the "file:line: key: problem"
// shape every other configuration error has.
func decodeError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" {
			return fmt.Errorf("%s:%d: %s: %s", file, pe.Position.Line, pe.LastKey, pe.Message)
		}
		return fmt.Errorf("%s:%d: %s", file, pe.Position.Line, pe.Message)
	}
	if m := tomlTypeErrRE.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s: %s", file, m[1], m[2], m[3])
	}
	return fmt.Errorf("%s: %w", file, err)
}

// unknownKeys reports keys that match no field. A misspelt key would
// otherwise be ignored and the default used without a word.
func unknownKeys(file string, md toml.MetaData) error {
	undecoded := md.Undecoded()
	var errs []error
	for _, k := range undecoded {
		// Report an unknown table once, not once per key inside it.
		if slices.ContainsFunc(undecoded, func(p toml.Key) bool {
			return len(p) < len(k) && slices.Equal(p, k[:len(p)])
		}) {
			continue
		}
		parent := k[:len(k)-1]
		msg := fmt.Sprintf("%s: unknown key %s", file, k)
		if allowed := keysUnder(reflect.TypeFor[Config](), parent); len(allowed) > 0 {
			where := "top level"
			if len(parent) > 0 {
				where = "[" + parent.String() + "]"
			}
			msg += fmt.Sprintf(" (%s allows %s)", where, strings.Join(allowed, ", "))
		}
		errs = append(errs, errors.New(msg))
	}
	return errors.Join(errs...)
}

// keysUnder lists the TOML keys a struct type accepts at the dotted path.
func keysUnder(t reflect.Type, p toml.Key) []string {
	for _, name := range p {
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldByTag(t, name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	if t.Kind() != reflect.Struct {
		return nil
	}
	var keys []string
	for i := range t.NumField() {
		if tag := tomlName(t.Field(i)); tag != "" {
			keys = append(keys, tag)
		}
	}
	return keys
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		if f := t.Field(i); tomlName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tomlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// sourceList lists every key of c with its value and origin, sorted by key.
func (c *Config) sourceList() []Source {
	var out []Source
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		if d, ok := v.Interface().(Duration); ok {
			out = append(out, Source{Key: prefix, Value: d.String()})
			return
		}
		switch v.Kind() {
		case reflect.Struct:
			for i := range v.NumField() {
				if name := tomlName(v.Type().Field(i)); name != "" {
					walk(joinKey(prefix, name), v.Field(i))
				}
			}
		case reflect.Map:
			if v.Len() == 0 {
				out = append(out, Source{Key: prefix, Value: "{}"})
				return
			}
			for _, k := range v.MapKeys() {
				walk(joinKey(prefix, k.String()), v.MapIndex(k))
			}
		case reflect.Bool:
			out = append(out, Source{Key: prefix, Value: strconv.FormatBool(v.Bool())})
		case reflect.Int, reflect.Int64:
			out = append(out, Source{Key: prefix, Value: strconv.FormatInt(v.Int(), 10)})
		case reflect.Float64:
			out = append(out, Source{Key: prefix, Value: strconv.FormatFloat(v.Float(), 'g', -1, 64)})
		default:
			out = append(out, Source{Key: prefix, Value: fmt.Sprint(v.Interface())})
		}
	}
	walk("", reflect.ValueOf(*c))
	for i := range out {
		out[i].From = c.origin(out[i].Key)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func joinKey(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// origin is where key's value came from, "default" if nothing set it.
func (c *Config) origin(key string) string {
	if from, ok := c.sources[key]; ok {
		return from
	}
	return FromDefault
}
