package promtest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Dashboard is the part of a Grafana dashboard JSON model that the tests
// check: panels with their PromQL targets and the template variables.
type Dashboard struct {
	// File is the path the dashboard was loaded from.
	File          string `json:"-"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	// Inputs are the import-time inputs (`__inputs`), e.g. DS_PROMETHEUS.
	Inputs []struct {
		Name     string `json:"name"`
		Type     string `json:"type"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel; a row (Type "row") holds its panels in
// Panels when collapsed.
type Panel struct {
	ID         int             `json:"id"`
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []PanelQuery    `json:"targets"`
	Panels     []Panel         `json:"panels"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
}

// PanelQuery is one target (query) of a panel.
type PanelQuery struct {
	RefID        string          `json:"refId"`
	Expr         string          `json:"expr"`
	LegendFormat string          `json:"legendFormat"`
	Datasource   json.RawMessage `json:"datasource"`
}

// Variable is one template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Label      string          `json:"label"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	IncludeAll bool            `json:"includeAll"`
	Multi      bool            `json:"multi"`
	AllValue   string          `json:"allValue"`
	Datasource json.RawMessage `json:"datasource"`
}

// QueryText is the variable's query as text: a plain string, or the
// "query" field of the object form newer Grafana writes.
func (v Variable) QueryText() string {
	var s string
	if json.Unmarshal(v.Query, &s) == nil {
		return s
	}
	var o struct {
		Query string `json:"query"`
	}
	if json.Unmarshal(v.Query, &o) == nil && o.Query != "" {
		return o.Query
	}
	return v.Definition
}

// LoadDashboard reads one dashboard JSON file.
func LoadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	d.File = path
	return &d, nil
}

// LoadDashboards reads every *.json file of dir, in name order.
func LoadDashboards(dir string) ([]*Dashboard, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no dashboards (*.json) in %s", dir)
	}
	sort.Strings(files)
	var out []*Dashboard
	for _, f := range files {
		d, err := LoadDashboard(f)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// DataPanels returns every panel that is not a row, including those inside
// collapsed rows, in dashboard order.
func (d *Dashboard) DataPanels() []Panel {
	var out []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			out = append(out, p)
		}
	}
	walk(d.Panels)
	return out
}

// Query is one PromQL expression of a dashboard: a panel target or a
// template variable's query.
type Query struct {
	// Where names it for messages: "<dashboard uid> / <panel title> / <refId>".
	Where string
	// Expr is the expression as written in the dashboard.
	Expr string
	// Legend is the target's legend format, e.g. "{{namespace}}".
	Legend string
}

var legendLabelRE = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)

// LegendLabels returns the labels the legend format refers to.
func (q Query) LegendLabels() []string {
	var out []string
	for _, m := range legendLabelRE.FindAllStringSubmatch(q.Legend, -1) {
		out = append(out, m[1])
	}
	return out
}

// Queries returns the expression of every target of every data panel.
func (d *Dashboard) Queries() []Query {
	var out []Query
	for _, p := range d.DataPanels() {
		for _, t := range p.Targets {
			out = append(out, Query{Where: fmt.Sprintf("%s / %s / %s", d.UID, p.Title, t.RefID), Expr: t.Expr, Legend: t.LegendFormat})
		}
	}
	return out
}

var labelValuesRE = regexp.MustCompile(`^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$`)

// VariableQueries returns, for every query variable, a PromQL expression
// that returns a series per value the variable would offer:
// label_values(m, l) becomes `count by (l) (m)`, query_result(e) becomes e.
// label_values(l) without a metric has no PromQL form and is left out.
func (d *Dashboard) VariableQueries() []Query {
	var out []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q := strings.TrimSpace(v.QueryText())
		var expr string
		switch {
		case labelValuesRE.MatchString(q):
			m := labelValuesRE.FindStringSubmatch(q)
			expr = fmt.Sprintf("count by (%s) (%s)", m[2], m[1])
		case strings.HasPrefix(q, "query_result(") && strings.HasSuffix(q, ")"):
			expr = strings.TrimSuffix(strings.TrimPrefix(q, "query_result("), ")")
		default:
			continue
		}
		out = append(out, Query{Where: fmt.Sprintf("%s / variable %s", d.UID, v.Name), Expr: expr})
	}
	return out
}

// AllValues maps every template variable except data sources to the value
// Grafana sends for "All": its allValue, else ".*". With every variable used
// in a regex matcher (`=~"$namespace"`), the expanded query covers all data.
func (d *Dashboard) AllValues() map[string]string {
	vals := map[string]string{}
	for _, v := range d.Templating.List {
		if v.Type == "datasource" {
			continue
		}
		if v.AllValue != "" {
			vals[v.Name] = v.AllValue
		} else {
			vals[v.Name] = ".*"
		}
	}
	return vals
}

// BuiltinValues are the values the tests use for Grafana's built-in
// variables: a 1m rate window (four scrapes at Grafana's recommended 15s) and
// a 15s step.
var BuiltinValues = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"__interval_ms":   "15000",
	"__range":         "1h",
	"__range_s":       "3600",
	"__range_ms":      "3600000",
}

// varRE matches $name, ${name}, ${name:format} and [[name]]. A name must
// start with a letter or underscore, so label_replace's "$1" is left alone.
var varRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?\]\]`)

// ExpandVariables replaces Grafana variables in expr with values (then
// BuiltinValues); a variable found in neither is an error.
func ExpandVariables(expr string, values map[string]string) (string, error) {
	var unknown []string
	out := varRE.ReplaceAllStringFunc(expr, func(m string) string {
		sub := varRE.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := values[name]; ok {
			return v
		}
		if v, ok := BuiltinValues[name]; ok {
			return v
		}
		unknown = append(unknown, m)
		return m
	})
	if len(unknown) > 0 {
		return out, fmt.Errorf("unknown variables %v in %q", unknown, expr)
	}
	return out, nil
}

var metricNameRE = regexp.MustCompile(`(?:^|[^A-Za-z0-9_:])(tasker_[a-z0-9_]+)`)

// MetricNames returns the distinct tasker_* metric names an expression
// mentions, as written (with any _bucket/_sum/_count/_total suffix).
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range metricNameRE.FindAllStringSubmatch(expr, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	sort.Strings(out)
	return out
}

// FamilyName strips the series suffix a histogram adds (_bucket, _sum,
// _count), giving the name the metric is defined under.
func FamilyName(series string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(series, s); ok {
			return b
		}
	}
	return series
}

// RuleDef is one rule as written in a rule file.
type RuleDef struct {
	File        string
	Group       string
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// Name is the alert name or the recorded series name.
func (r RuleDef) Name() string {
	if r.Alert != "" {
		return r.Alert
	}
	return r.Record
}

// LoadRules reads the rules of Prometheus rule files.
func LoadRules(files ...string) ([]RuleDef, error) {
	var out []RuleDef
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var doc struct {
			Groups []struct {
				Name  string    `yaml:"name"`
				Rules []RuleDef `yaml:"rules"`
			} `yaml:"groups"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, g := range doc.Groups {
			for _, r := range g.Rules {
				r.File, r.Group = f, g.Name
				out = append(out, r)
			}
		}
	}
	return out, nil
}
