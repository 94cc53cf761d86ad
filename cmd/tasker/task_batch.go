package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/taskerhq/tasker/client"
)

// readTaskRequests reads a JSON-lines file of task requests, naming the
// line of any that cannot be one. Blank lines are skipped.
func readTaskRequests(r io.Reader) ([]client.TaskRequest, error) {
	var reqs []client.TaskRequest
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var req client.TaskRequest
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, usageError("--file: line %d is not a task request: %v", line, err)
		}
		reqs = append(reqs, req)
		if len(reqs) > client.MaxTaskBatch {
			return nil, usageError("--file: at most %d task requests fit in one batch", client.MaxTaskBatch)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, usageError("--file: %v", err)
	}
	if len(reqs) == 0 {
		return nil, usageError("--file holds no task request")
	}
	return reqs, nil
}

func runTaskCreateFile(ctx context.Context, stdin io.Reader, out io.Writer, g *globalFlags, f taskCreateFlags) error {
	if f.template != "" || f.wait || f.correlationID != "" || f.parentCorrelationID != "" {
		return usageError("--file takes the whole requests from the file: leave out --template, --context, --correlation-id, --parent-correlation-id and --wait")
	}
	asJSON, err := g.jsonOutput()
	if err != nil {
		return err
	}
	in := stdin
	if f.file != "-" {
		file, err := os.Open(f.file)
		if err != nil {
			return usageError("--file: %v", err)
		}
		defer file.Close()
		in = file
	}
	reqs, err := readTaskRequests(in)
	if err != nil {
		return err
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	tasks, err := c.CreateTasks(ctx, reqs)
	if err != nil {
		return apiCallError(err)
	}
	if asJSON {
		return printJSON(out, tasks)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK_UUID\tCORRELATION_ID\tTEMPLATE\tSTATE")
	for _, t := range tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s/%s@%s\t%s\n", t.TaskUUID, t.CorrelationID, t.Namespace, t.Name, t.Version, t.State)
	}
	return tw.Flush()
}
