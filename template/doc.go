// Package template defines Tasker task templates: a named, versioned DAG of
// steps, each bound to a handler name that workers resolve through a
// handler.Registry.
//
// Templates are written in YAML:
//
//	namespace: linear_workflow     # workers of this namespace read worker_<namespace>_queue
//	name: mathematical_sequence
//	version: 1.0.0                 # MAJOR.MINOR.PATCH
//	description: Squares the input four times.
//	steps:
//	  - name: linear_step_1
//	    handler: linear.square
//	    depends_on: []
//	    inputs: {}                 # handler initialization, handed to the handler as StepContext.Inputs
//	    retry:
//	      max_attempts: 3          # total attempts including the first
//	      retryable: true
//	      backoff: {base: 1s, cap: 30s}
//	    timeout: 30s
//
// Parse applies defaults and validates the structure; Validate additionally
// checks handler names against a registry. Every validation problem is a
// *ValidationError naming the template, the step and the field, so callers
// can map problems to API fields with errors.As.
//
// The JSON form (MarshalJSON / UnmarshalJSON) is what Tasker stores in the
// database. It spells every field out, durations included (as Go duration
// strings such as "1.5s"), so that SQL and other readers never need to know
// the defaults, and a template survives a JSON round trip unchanged.
package template
