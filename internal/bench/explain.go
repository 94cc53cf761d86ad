package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/taskerhq/tasker/internal/db"
)

// ExplainConfig configures Explain. Zero values mean the documented default.
type ExplainConfig struct {
	DatabaseURL string
	// Tasks is the dataset size. Default 50000.
	Tasks int
	// Dataset shapes the generated data (its Tasks, Start and DatabaseURL are ignored).
	Dataset GenerateConfig
	// Cases are the calls to explain. Default SQLCases.
	Cases []SQLCase
	// Warmup calls of each case run unexplained first, so the captured call
	// runs the plans a long-lived connection runs (plpgsql switches to
	// generic plans after five executions). Default 6.
	Warmup int
	// SeqScanMinRows makes a table large: a sequential scan of it is a
	// finding. Default 10000.
	SeqScanMinRows int64
	// MisestimateFactor flags a plan node whose estimated and actual rows
	// differ by this factor or more, when the larger is at least
	// MisestimateMinRows. Defaults 10 and 10.
	MisestimateFactor  float64
	MisestimateMinRows float64
	Logger             *slog.Logger
	Progress           func(ProgressReport)
}

func (c ExplainConfig) withDefaults() ExplainConfig {
	if c.Tasks == 0 {
		c.Tasks = 50000
	}
	if len(c.Cases) == 0 {
		c.Cases = SQLCases
	}
	if c.Warmup == 0 {
		c.Warmup = 6
	}
	if c.SeqScanMinRows == 0 {
		c.SeqScanMinRows = 10000
	}
	if c.MisestimateFactor == 0 {
		c.MisestimateFactor = 10
	}
	if c.MisestimateMinRows == 0 {
		c.MisestimateMinRows = 10
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Progress == nil {
		c.Progress = func(ProgressReport) {}
	}
	return c
}

func (c ExplainConfig) validate() error {
	switch {
	case c.DatabaseURL == "":
		return errors.New("explain: a database URL is required")
	case c.Tasks < 1:
		return fmt.Errorf("explain: tasks must be ≥ 1, got %d", c.Tasks)
	case c.Warmup < 0:
		return fmt.Errorf("explain: warmup must be ≥ 0, got %d", c.Warmup)
	case c.SeqScanMinRows < 1:
		return fmt.Errorf("explain: seq scan threshold must be ≥ 1 row, got %d", c.SeqScanMinRows)
	case c.MisestimateFactor <= 1:
		return fmt.Errorf("explain: misestimate factor must be > 1, got %g", c.MisestimateFactor)
	}
	return nil
}

// Finding kinds.
const (
	FindingSeqScan     = "seq_scan"
	FindingMisestimate = "misestimate"
	FindingDiskSort    = "disk_sort"
	FindingTempSpill   = "temp_spill"
)

// ExplainResult is the plans of the statements each hot-path call runs.
type ExplainResult struct {
	Benchmark string `json:"benchmark"`
	Tasks     int    `json:"tasks"`
	// Thresholds used for the findings.
	SeqScanMinRows     int64   `json:"seq_scan_min_rows"`
	MisestimateFactor  float64 `json:"misestimate_factor"`
	MisestimateMinRows float64 `json:"misestimate_min_rows"`
	// TableRows is each tasker table's row estimate (pg_class.reltuples).
	TableRows map[string]int64 `json:"table_rows"`
	Cases     []ExplainCase    `json:"cases"`
	// Findings collects every case's findings.
	Findings  []Finding `json:"findings"`
	Postgres  Postgres  `json:"postgres"`
	Machine   Machine   `json:"machine"`
	Commit    string    `json:"commit"`
	StartedAt time.Time `json:"started_at"`
}

// ExplainCase is one call and the statements it ran.
type ExplainCase struct {
	Name       string             `json:"name"`
	Function   string             `json:"function"`
	Statements []ExplainStatement `json:"statements"`
}

// ExplainStatement is one executed statement's plan, as auto_explain saw it.
type ExplainStatement struct {
	// Query is the statement text (the call itself, or a statement inside
	// the function); Nested is true for the latter.
	Query  string `json:"query"`
	Nested bool   `json:"nested"`
	// ExecutionMs is the statement's execution time.
	ExecutionMs float64 `json:"execution_ms"`
	// PlanningMs is the planning time when the server reports it (it does
	// not for statements auto_explain logs; 0 then).
	PlanningMs float64 `json:"planning_ms"`
	// Top node: estimated and actual rows.
	RowsEstimated float64 `json:"rows_estimated"`
	RowsActual    float64 `json:"rows_actual"`
	// Buffers of the whole statement.
	SharedHit   int64     `json:"shared_hit_blocks"`
	SharedRead  int64     `json:"shared_read_blocks"`
	TempWritten int64     `json:"temp_written_blocks"`
	Nodes       int       `json:"nodes"`
	NodeTypes   []string  `json:"node_types"`
	Findings    []Finding `json:"findings,omitempty"`
	Plan        any       `json:"plan"`
}

// Finding is something in a plan worth a look.
type Finding struct {
	Case     string `json:"case"`
	Kind     string `json:"kind"`
	Node     string `json:"node"`
	Relation string `json:"relation,omitempty"`
	// Estimated and Actual rows (per loop) for misestimates; Actual is the
	// table's rows for sequential scans.
	Estimated float64 `json:"estimated,omitempty"`
	Actual    float64 `json:"actual,omitempty"`
	Detail    string  `json:"detail"`
	Query     string  `json:"query"`
}

// Explain generates a dataset of Tasks tasks and captures, with
// auto_explain (ANALYZE, BUFFERS, JSON, nested statements) reporting to the
// client, the plan of every statement each case runs, including those
// inside plpgsql functions, then looks for sequential scans of large
// tables, row misestimates and sorts or hashes spilling to disk.
func Explain(ctx context.Context, cfg ExplainConfig) (*ExplainResult, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	started := time.Now()
	pool, _, pg, err := prepare(ctx, cfg.DatabaseURL, 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	res := &ExplainResult{Benchmark: "explain", Tasks: cfg.Tasks, SeqScanMinRows: cfg.SeqScanMinRows,
		MisestimateFactor: cfg.MisestimateFactor, MisestimateMinRows: cfg.MisestimateMinRows,
		Postgres: pg, Machine: ThisMachine(), Commit: Commit(), StartedAt: started.UTC()}
	have, err := countGenerated(ctx, pool)
	if err != nil {
		return nil, err
	}
	if have < cfg.Tasks {
		if _, err := growDataset(ctx, pool, cfg.Dataset, have, cfg.Tasks, cfg.Progress); err != nil {
			return nil, err
		}
	}
	samples, err := LoadSamples(ctx, pool)
	if err != nil {
		return nil, err
	}
	if res.TableRows, err = tableRows(ctx, pool); err != nil {
		return nil, err
	}

	var mu sync.Mutex
	var notices []string
	connCfg := pool.Config().ConnConfig.Copy()
	connCfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		defer mu.Unlock()
		notices = append(notices, n.Message)
	}
	conn, err := pgx.ConnectConfig(ctx, connCfg)
	if err != nil {
		return nil, fmt.Errorf("connecting: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "LOAD 'auto_explain'"); err != nil {
		return nil, fmt.Errorf("loading auto_explain (the explain benchmark needs a superuser, or auto_explain in session_preload_libraries): %w", err)
	}
	for _, s := range []string{"log_analyze", "log_buffers", "log_nested_statements", "log_timing"} {
		if _, err := conn.Exec(ctx, "SET auto_explain."+s+" = on"); err != nil {
			return nil, fmt.Errorf("configuring auto_explain: %w", err)
		}
	}
	for _, s := range []string{"SET auto_explain.log_format = json", "SET auto_explain.log_level = notice",
		"SET client_min_messages = notice", "SET auto_explain.log_min_duration = -1"} {
		if _, err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("configuring auto_explain: %w", err)
		}
	}

	funcs := db.NewFuncs(nil)
	for ci, c := range cfg.Cases {
		cfg.Progress(ProgressReport{Phase: "explain", Done: ci, Total: len(cfg.Cases)})
		if c.Candidates(samples) == 0 {
			cfg.Logger.Warn("nothing to call the function on", "function", c.Name)
			continue
		}
		r := rand.New(rand.NewPCG(uint64(cfg.Tasks), uint64(ci)))
		if _, err := timeCase(ctx, conn, funcs, c, samples, r, 0, cfg.Warmup); err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		if _, err := conn.Exec(ctx, "SET auto_explain.log_min_duration = 0"); err != nil {
			return nil, fmt.Errorf("enabling auto_explain: %w", err)
		}
		mu.Lock()
		notices = notices[:0]
		mu.Unlock()
		_, err := timeCase(ctx, conn, funcs, c, samples, r, 0, 1)
		if _, derr := conn.Exec(ctx, "SET auto_explain.log_min_duration = -1"); err == nil {
			err = derr
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.Name, err)
		}
		mu.Lock()
		got := slices.Clone(notices)
		mu.Unlock()
		ec := ExplainCase{Name: c.Name, Function: c.Function}
		for _, n := range got {
			st, ok, err := parseAutoExplain(n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.Name, err)
			}
			if !ok {
				continue
			}
			// The wrapper's statement calls the function; anything else ran inside it.
			st.Nested = !strings.Contains(st.Query, "tasker."+c.Function+"(")
			st.Findings = analyzePlan(c.Name, st, cfg, res.TableRows)
			for _, f := range st.Findings {
				// A loop in the function runs a statement many times: report it once.
				if !slices.ContainsFunc(res.Findings, func(g Finding) bool {
					return g.Case == f.Case && g.Kind == f.Kind && g.Node == f.Node && g.Query == f.Query
				}) {
					res.Findings = append(res.Findings, f)
				}
			}
			ec.Statements = append(ec.Statements, st)
		}
		res.Cases = append(res.Cases, ec)
	}
	cfg.Progress(ProgressReport{Phase: "explain", Done: len(cfg.Cases), Total: len(cfg.Cases)})
	return res, nil
}

// tableRows reads the planner's row estimates of the tasker tables.
func tableRows(ctx context.Context, q db.Querier) (map[string]int64, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, greatest(c.reltuples, 0)::bigint FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'tasker' AND c.relkind = 'r'`)
	if err != nil {
		return nil, fmt.Errorf("reading table sizes: %w", err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading table sizes: %w", err)
		}
		out[name] = n
	}
	return out, rows.Err()
}

// parseAutoExplain parses an auto_explain message: "duration: D ms  plan:\n{json}".
func parseAutoExplain(msg string) (ExplainStatement, bool, error) {
	var st ExplainStatement
	rest, ok := strings.CutPrefix(msg, "duration: ")
	if !ok {
		return st, false, nil
	}
	ms, rest, ok := strings.Cut(rest, " ms")
	if !ok {
		return st, false, nil
	}
	d, err := strconv.ParseFloat(ms, 64)
	if err != nil {
		return st, false, fmt.Errorf("parsing auto_explain duration %q: %w", ms, err)
	}
	i := strings.IndexByte(rest, '{')
	if i < 0 {
		return st, false, nil
	}
	var doc struct {
		Query    string          `json:"Query Text"`
		Plan     json.RawMessage `json:"Plan"`
		Planning *float64        `json:"Planning Time"`
	}
	if err := json.Unmarshal([]byte(rest[i:]), &doc); err != nil {
		return st, false, fmt.Errorf("parsing auto_explain plan: %w", err)
	}
	var plan map[string]any
	if err := json.Unmarshal(doc.Plan, &plan); err != nil {
		return st, false, fmt.Errorf("parsing auto_explain plan: %w", err)
	}
	st.Query = strings.TrimSpace(doc.Query)
	st.ExecutionMs = d
	if doc.Planning != nil {
		st.PlanningMs = *doc.Planning
	}
	st.Plan = plan
	st.RowsEstimated, st.RowsActual = num(plan, "Plan Rows"), num(plan, "Actual Rows")
	st.SharedHit, st.SharedRead = int64(num(plan, "Shared Hit Blocks")), int64(num(plan, "Shared Read Blocks"))
	st.TempWritten = int64(num(plan, "Temp Written Blocks"))
	walk(plan, func(n map[string]any) {
		st.Nodes++
		st.NodeTypes = append(st.NodeTypes, nodeLabel(n))
	})
	return st, true, nil
}

func num(n map[string]any, k string) float64 {
	if v, ok := n[k].(float64); ok {
		return v
	}
	return 0
}

func str(n map[string]any, k string) string {
	s, _ := n[k].(string)
	return s
}

func walk(n map[string]any, fn func(map[string]any)) {
	fn(n)
	if kids, ok := n["Plans"].([]any); ok {
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				walk(m, fn)
			}
		}
	}
}

func nodeLabel(n map[string]any) string {
	l := str(n, "Node Type")
	if r := str(n, "Relation Name"); r != "" {
		l += " on " + r
	}
	if i := str(n, "Index Name"); i != "" {
		l += " using " + i
	}
	return l
}

// shortQuery is the first line of a query, for reports.
func shortQuery(q string) string {
	q = strings.Join(strings.Fields(q), " ")
	if len(q) > 160 {
		q = q[:157] + "..."
	}
	return q
}

// analyzePlan returns the findings of one statement's plan. A misestimate
// is reported at the lowest node that has it: the nodes above inherit it.
func analyzePlan(caseName string, st ExplainStatement, cfg ExplainConfig, tableRows map[string]int64) []Finding {
	var out []Finding
	q := shortQuery(st.Query)
	misestimated := func(n map[string]any) bool {
		if num(n, "Actual Loops") == 0 {
			return false
		}
		est, act := num(n, "Plan Rows"), num(n, "Actual Rows")
		hi, lo := math.Max(est, act), math.Max(math.Min(est, act), 1)
		return hi >= cfg.MisestimateMinRows && hi/lo >= cfg.MisestimateFactor
	}
	plan, _ := st.Plan.(map[string]any)
	walk(plan, func(n map[string]any) {
		typ := str(n, "Node Type")
		loops := num(n, "Actual Loops")
		if typ == "Seq Scan" && loops > 0 {
			rel := str(n, "Relation Name")
			if rows := tableRows[rel]; rows >= cfg.SeqScanMinRows {
				out = append(out, Finding{Case: caseName, Kind: FindingSeqScan, Node: nodeLabel(n), Relation: rel,
					Actual: float64(rows), Query: q,
					Detail: fmt.Sprintf("sequential scan of %s (%d rows ≥ %d)", rel, rows, cfg.SeqScanMinRows)})
			}
		}
		if misestimated(n) && !anyChild(n, misestimated) {
			est, act := num(n, "Plan Rows"), num(n, "Actual Rows")
			hi, lo := math.Max(est, act), math.Max(math.Min(est, act), 1)
			out = append(out, Finding{Case: caseName, Kind: FindingMisestimate, Node: nodeLabel(n),
				Relation: str(n, "Relation Name"), Estimated: est, Actual: act, Query: q,
				Detail: fmt.Sprintf("%s: estimated %.0f rows, actual %.0f (%.0f×)", nodeLabel(n), est, act, hi/lo)})
		}
		if str(n, "Sort Space Type") == "Disk" {
			out = append(out, Finding{Case: caseName, Kind: FindingDiskSort, Node: nodeLabel(n), Query: q,
				Detail: fmt.Sprintf("sort spilled %.0f kB to disk", num(n, "Sort Space Used"))})
		}
		if typ != "Sort" && num(n, "Temp Written Blocks") > 0 && !anyChild(n, func(c map[string]any) bool {
			return num(c, "Temp Written Blocks") > 0
		}) {
			out = append(out, Finding{Case: caseName, Kind: FindingTempSpill, Node: nodeLabel(n), Query: q,
				Detail: fmt.Sprintf("%s wrote %.0f temporary blocks", nodeLabel(n), num(n, "Temp Written Blocks"))})
		}
	})
	return out
}

// anyChild reports whether pred holds for a direct child of n.
func anyChild(n map[string]any, pred func(map[string]any) bool) bool {
	kids, _ := n["Plans"].([]any)
	for _, k := range kids {
		if m, ok := k.(map[string]any); ok && pred(m) {
			return true
		}
	}
	return false
}

// SeqScans returns the sequential-scan findings.
func (r *ExplainResult) SeqScans() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Kind == FindingSeqScan {
			out = append(out, f)
		}
	}
	return out
}
