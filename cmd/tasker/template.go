package main

import (
	"errors"
	"fmt"
	"io/fs"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/template"
)

func newTemplateCmd(g *globalFlags, getenv func(string) string) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "template",
		Short: "List registered templates and validate template files",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	usageFlagErrors(cmd)
	cmd.AddCommand(newTemplateListCmd(g), newTemplateValidateCmd(g), newTemplateRegisterCmd(getenv))
	return cmd
}

func newTemplateRegisterCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	cmd := &cobra.Command{
		Use:   "register DIR...",
		Short: "Register the template YAML files of directories in the database",
		Long: `Register templates so that tasks can be created from them. A template whose
namespace, name and version are registered already must have the same content
(then nothing changes); a changed template needs a new version. Nothing is written
when any template is invalid.`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.require(); err != nil {
				return err
			}
			work, err := loadWorkload(args, false)
			if err != nil {
				return err
			}
			pool, err := openDB(cmd.Context(), f.URL, 2)
			if err != nil {
				return err
			}
			defer pool.Close()
			if err := work.register(cmd.Context(), pool, nil); err != nil {
				return err
			}
			for _, t := range work.templates {
				printf(cmd, "registered %s (%d steps)\n", t.Key(), len(t.Steps))
			}
			return nil
		},
	}
	f.bind(cmd, getenv, true)
	return cmd
}

func newTemplateListCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the templates registered with the server",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			templates, err := c.Templates(cmd.Context())
			if err != nil {
				return apiCallError(err)
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), templates)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			_, _ = fmt.Fprintln(tw, "TEMPLATE\tSTEPS\tDESCRIPTION")
			for _, t := range templates {
				_, _ = fmt.Fprintf(tw, "%s/%s@%s\t%d\t%s\n", t.Namespace, t.Name, t.Version, len(t.Steps), t.Description)
			}
			return tw.Flush()
		},
	}
}

// templateValidation is the --output json answer of template validate.
type templateValidation struct {
	File     string `json:"file"`
	Valid    bool   `json:"valid"`
	Template string `json:"template,omitempty"`
	Steps    int    `json:"steps,omitempty"`
	Error    string `json:"error,omitempty"`
}

func newTemplateValidateCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE",
		Short: "Parse and validate a template YAML file locally",
		Long: `Parse and validate a template YAML file without a server: structure, names,
versions, retry policies and the dependency graph (handler names are not checked,
they are known only to workers). Exits 1 when the template is invalid.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cmd.SilenceUsage = true
			asJSON, err := g.jsonOutput()
			if err != nil {
				return err
			}
			path := args[0]
			// ParseFile validates too (as Validate(nil) does), so a second
			// Validate call would only repeat the work.
			t, err := template.ParseFile(path)
			switch {
			case errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission):
				return usageError("%w", err)
			case err != nil:
				if asJSON {
					if perr := printJSON(cmd.OutOrStdout(), templateValidation{File: path, Error: err.Error()}); perr != nil {
						return perr
					}
				}
				return &exitError{code: exitFailed, err: err}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), templateValidation{File: path, Valid: true, Template: t.Key(), Steps: len(t.Steps)})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "OK %s: %s, %d steps\n", path, t.Key(), len(t.Steps))
			return err
		},
	}
}
