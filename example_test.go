package tasker_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/taskerhq/tasker"
	"github.com/taskerhq/tasker/client"
	"github.com/taskerhq/tasker/handler"
	"github.com/taskerhq/tasker/template"
)

// A program that runs its own two-step workflow: it registers handlers and a
// template, starts a worker and an orchestrator, creates a task and waits for
// its result.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := tasker.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	}

	handlers := handler.NewRegistry()
	handlers.MustRegister("greeting.compose", handler.Func(func(_ context.Context, step *handler.StepContext) (any, error) {
		name, err := handler.Input[string](step, "name")
		if err != nil {
			return nil, handler.Permanent(err) // retrying cannot fix the task's input
		}
		return "Hello, " + name, nil
	}))
	handlers.MustRegister("greeting.shout", handler.Func(func(_ context.Context, step *handler.StepContext) (any, error) {
		text, err := handler.DependencyResult[string](step, "compose")
		return text + "!", err
	}))
	greeting := &template.Template{Namespace: "greeting", Name: "hello", Version: "1.0.0", Steps: []template.Step{
		template.NewStep("compose", "greeting.compose"),
		template.NewStep("shout", "greeting.shout", "compose"),
	}}

	c, err := tasker.NewClient(pool, &tasker.Config{
		Templates:     []*template.Template{greeting},
		Handlers:      handlers,
		Worker:        &tasker.WorkerConfig{},
		Orchestration: &tasker.OrchestrationConfig{},
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Stop(ctx) }()

	req, err := client.NewTaskRequest("greeting", "hello", "", map[string]string{"name": "Tasker"})
	if err != nil {
		log.Fatal(err)
	}
	created, err := c.CreateTask(ctx, req)
	if err != nil {
		log.Fatal(err)
	}
	for {
		task, err := c.GetTask(ctx, created.TaskUUID)
		if err != nil {
			log.Fatal(err)
		}
		if task.Terminal() {
			fmt.Println(task.State, string(task.Result["shout"]))
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Output: complete "Hello, Tasker!"
}

// A task created in the caller's transaction exists only if that transaction
// commits, together with the business rows written next to it.
func ExampleClient_CreateTaskTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	c, err := tasker.NewClient(pool, &tasker.Config{Templates: []*template.Template{{
		Namespace: "billing", Name: "invoice", Version: "1.0.0",
		Steps: []template.Step{template.NewStep("send", "billing.send")},
	}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := c.Start(ctx); err != nil { // registers the template
		log.Fatal(err)
	}

	tx, err := pool.Begin(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// ... the business change (e.g. INSERT INTO invoices ...) goes here ...
	req, err := client.NewTaskRequest("billing", "invoice", "", map[string]int{"invoice_id": 42})
	if err != nil {
		log.Fatal(err)
	}
	created, err := c.CreateTaskTx(ctx, tx, req)
	if err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		log.Fatal(err)
	}
	task, err := c.GetTask(ctx, created.TaskUUID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(task.Namespace, task.Name, task.TotalSteps)
	// Output: billing invoice 1
}
