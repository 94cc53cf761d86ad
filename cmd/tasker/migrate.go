package main

import (
	"github.com/spf13/cobra"

	"github.com/taskerhq/tasker/internal/db"
)

func newMigrateCmd(getenv func(string) string) *cobra.Command {
	var f dbFlags
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations (safe to run from several processes at once)",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := f.require(); err != nil {
				return err
			}
			pool, err := openDB(cmd.Context(), f.URL, 2)
			if err != nil {
				return err
			}
			defer pool.Close()
			lines, err := db.MigrationStatus(cmd.Context(), pool)
			if err != nil {
				return err
			}
			if status {
				for _, l := range lines {
					printf(cmd, "%s\n", l)
				}
				return nil
			}
			printf(cmd, "migrations applied (%d)\n", len(lines))
			return nil
		},
	}
	f.bind(cmd, getenv, true)
	cmd.Flags().BoolVar(&status, "status", false, "list every migration and its state")
	return cmd
}
