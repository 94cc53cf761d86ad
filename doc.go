// Package tasker runs Tasker inside your own Go program: a worker that runs
// your step handlers, orchestration that moves tasks through their DAGs, the
// REST API as an http.Handler, and task creation — including inside your own
// database transaction.
//
// A program that defines its workflows registers its handlers and templates
// and starts a Client over a pgx pool:
//
//	handlers := handler.NewRegistry()
//	handlers.MustRegister("etl.fetch", handler.Func(fetch))
//	tpls, _ := template.LoadFS(templatesFS, "templates")
//	if err := tasker.Migrate(ctx, pool); err != nil { ... }
//	c, err := tasker.NewClient(pool, &tasker.Config{
//		Templates:     tpls,
//		Handlers:      handlers,
//		Worker:        &tasker.WorkerConfig{Concurrency: 20},
//		Orchestration: &tasker.OrchestrationConfig{},
//	})
//	if err := c.Start(ctx); err != nil { ... }
//	defer c.Stop(context.Background())
//	created, err := c.CreateTask(ctx, req)
//
// Any number of processes may run workers and orchestration against one
// database; a process with neither can still create and read tasks.
package tasker
