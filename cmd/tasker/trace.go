package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/client"
)

// traceNode is one task of a correlation tree, with its steps and children.
type traceNode struct {
	Task     client.Task   `json:"task"`
	Steps    []client.Step `json:"steps"`
	Children []*traceNode  `json:"children,omitempty"`
}

func newTraceCmd(g *globalFlags) *cobra.Command {
	var jaegerURL string
	cmd := &cobra.Command{
		Use:   "trace CORRELATION_ID",
		Short: "Show every task of a correlation ID and its child tasks, with step timelines and trace IDs",
		Long: `tasker trace follows a business correlation ID: it prints every task that carries it,
then every task whose parent_correlation_id is one of theirs (nested workflows), each with
its step timeline and the ID of its trace, to look up in Jaeger (or any OpenTelemetry backend).`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			corr, err := parseUUIDFlag("CORRELATION_ID", args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			roots, err := collectTrace(cmd.Context(), c, corr)
			if err != nil {
				return apiCallError(err)
			}
			if len(roots) == 0 {
				return failedError("no task carries correlation ID %s", corr)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), roots)
			}
			for _, n := range roots {
				printTraceNode(cmd.OutOrStdout(), n, 0, jaegerURL)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&jaegerURL, "jaeger-url", "http://127.0.0.1:16686", "Jaeger query base URL used to print trace links (empty: none)")
	return cmd
}

// collectTrace walks from the tasks of corr down through parent_correlation_id.
func collectTrace(ctx context.Context, c *client.Client, corr uuid.UUID) ([]*traceNode, error) {
	seen := map[uuid.UUID]bool{}
	var walk func(tasks []client.Task) ([]*traceNode, error)
	walk = func(tasks []client.Task) ([]*traceNode, error) {
		var nodes []*traceNode
		for _, t := range tasks {
			steps, err := c.ListSteps(ctx, t.TaskUUID)
			if err != nil {
				return nil, err
			}
			n := &traceNode{Task: t, Steps: steps}
			if !seen[t.CorrelationID] {
				seen[t.CorrelationID] = true
				kids, err := c.ListChildTasks(ctx, t.CorrelationID)
				if err != nil {
					return nil, err
				}
				if n.Children, err = walk(kids); err != nil {
					return nil, err
				}
			}
			nodes = append(nodes, n)
		}
		return nodes, nil
	}
	tasks, err := c.ListTasksByCorrelation(ctx, corr)
	if err != nil {
		return nil, err
	}
	return walk(tasks)
}

func printTraceNode(w io.Writer, n *traceNode, depth int, jaegerURL string) {
	ind := strings.Repeat("    ", depth)
	t := n.Task
	fmt.Fprintf(w, "%stask %s  %s/%s@%s  %s\n", ind, t.TaskUUID, t.Namespace, t.Name, t.Version, t.State)
	fmt.Fprintf(w, "%s  correlation_id  %s\n", ind, t.CorrelationID)
	if t.ParentCorrelationID != nil {
		fmt.Fprintf(w, "%s  parent          %s\n", ind, *t.ParentCorrelationID)
	}
	if t.TraceID != "" {
		fmt.Fprintf(w, "%s  trace_id        %s\n", ind, t.TraceID)
		if jaegerURL != "" {
			fmt.Fprintf(w, "%s  trace           %s/api/traces/%s\n", ind, strings.TrimRight(jaegerURL, "/"), t.TraceID)
		}
	} else {
		fmt.Fprintf(w, "%s  trace_id        (none: created with telemetry disabled)\n", ind)
	}
	for _, s := range n.Steps {
		fmt.Fprintf(w, "%s  step %-28s %-10s attempts %d\n", ind, s.Name, s.State, s.Attempts)
		for _, tr := range s.Transitions {
			fmt.Fprintf(w, "%s      %s  +%8.2f ms  %s\n", ind, tr.At.Local().Format("15:04:05.000"),
				float64(tr.At.Sub(t.CreatedAt).Microseconds())/1000, arrow(tr))
		}
	}
	for _, c := range n.Children {
		printTraceNode(w, c, depth+1, jaegerURL)
	}
}
