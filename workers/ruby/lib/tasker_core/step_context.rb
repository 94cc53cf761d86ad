# frozen_string_literal: true

module TaskerCore
  # StepContext is everything a handler knows about the step it runs, as the
  # Go worker claimed it.
  class StepContext
    attr_reader :handle, :span_handle, :handler_name, :task_uuid, :step_uuid, :step_name, :namespace,
                :task_name, :task_version, :correlation_id, :parent_correlation_id,
                :task_context, :inputs, :dependency_results, :attempt, :max_attempts,
                :traceparent, :tracestate

    def initialize(data)
      @handle = Integer(data.fetch("handle"))
      # The handler_execution span the core started for this step (0: none).
      @span_handle = Integer(data.fetch("span", 0))
      @handler_name = data.fetch("handler")
      @task_uuid = data.fetch("task_uuid")
      @step_uuid = data.fetch("step_uuid")
      @step_name = data.fetch("step_name")
      @namespace = data.fetch("namespace")
      @task_name = data["task_name"]
      @task_version = data["task_version"]
      @correlation_id = data.fetch("correlation_id")
      @parent_correlation_id = data["parent_correlation_id"]
      @task_context = data["context"] || {}
      @inputs = data["inputs"] || {}
      @dependency_results = data["dependency_results"] || {}
      @attempt = data.fetch("attempt")
      @max_attempts = data.fetch("max_attempts")
      @traceparent = data["traceparent"].to_s
      @tracestate = data["tracestate"].to_s
      @deadline_ms = data["deadline_unix_ms"]
    end

    # The task input's value at key (a String key of the task's JSON context).
    def input(key) = task_context.fetch(key.to_s)

    # The result of the named ancestor step.
    def dependency_result(step) = dependency_results.fetch(step.to_s)

    def retry? = attempt > 1
    def last_attempt? = attempt >= max_attempts

    # When the worker gives up on this attempt (a Time), or nil.
    def deadline = @deadline_ms && Time.at(@deadline_ms / 1000.0)

    # The W3C trace ID of the task's trace.
    def trace_id = traceparent.split("-")[1]

    # Creates a nested task whose parent correlation ID is this task's and
    # returns its task UUID. It joins this task's trace, under the innermost
    # open span. A retry after a submission whose answer was lost starts a
    # second child.
    def submit_child_task(namespace:, name:, version: nil, context: {}, **options)
      request = { namespace: namespace, name: name, context: context, **options }
      request[:version] = version if version
      TaskerCore.bridge.submit_child(child_parent_handle, request)
    end

    private

    # The innermost span of the thread running this step, else the step.
    def child_parent_handle
      Tracing.current_step.equal?(self) ? Tracing.current_handle : handle
    end
  end
end
