# frozen_string_literal: true

require_relative "bridge"

module TaskerCore
  # Tracing is how Ruby code logs and makes spans: through the Go core's
  # logger and tracer, never a Ruby Logger. Inside a step every record
  # carries the step's correlation_id, task_uuid, step_uuid, namespace and
  # step_name, component "ruby_worker", and the trace_id/span_id of the
  # innermost open span (or of the worker's worker.invoke_handler span), so
  # it lands in the task's one trace with the same format and the same OTLP
  # log export as the core's own records.
  #
  #   TaskerCore::Tracing.span(:info, "charge_card", amount: 12) do
  #     TaskerCore::Tracing.info("charging", provider: "acme")
  #   end
  #
  # The current step and span are per thread (fiber-local, as Thread#[] is).
  module Tracing
    LEVELS = %w[debug info warn error].freeze
    SCOPE_KEY = :tasker_core_scope

    # Scope is what the current thread runs under: the step and the stack of
    # handles (the step's, then every open span's).
    Scope = Struct.new(:step, :handles)

    module_function

    # Runs the block inside span name (a child of the innermost open span, or
    # of the step's span), with fields as attributes and level recorded as
    # the "level" attribute. An exception leaving the block marks the span
    # failed (status error, error.type = its class) and propagates. Returns
    # the block's value.
    def span(level, name, **fields)
      level = check_level(level)
      handle = TaskerCore.bridge.span_start(current_handle, name, fields.merge(level: level))
      scope = (Thread.current[SCOPE_KEY] ||= Scope.new(nil, []))
      scope.handles.push(handle)
      begin
        result = yield
      rescue Exception => e # rubocop:disable Lint/RescueException -- recorded and re-raised
        status = { status: "error", message: "#{e.class}: #{e.message}", error_type: e.class.name }
        raise
      ensure
        scope.handles.pop
        end_span(handle, status)
      end
      result
    end

    # Writes a log record at level (debug, info, warn, error).
    def event(level, message, **fields)
      TaskerCore.bridge.log(current_handle, check_level(level), message, fields)
      nil
    end

    def debug(message, **fields) = event(:debug, message, **fields)
    def info(message, **fields) = event(:info, message, **fields)
    def warn(message, **fields) = event(:warn, message, **fields)
    def error(message, **fields) = event(:error, message, **fields)

    # The step the current thread runs, or nil.
    def current_step = Thread.current[SCOPE_KEY]&.step

    # The handle records and spans attach to: the innermost open span, else
    # the current step, else 0 (none).
    def current_handle
      scope = Thread.current[SCOPE_KEY]
      (scope && scope.handles.last) || 0
    end

    # Runs the block with step as the current thread's step (the worker does
    # this around each handler): records and spans go under the step's
    # handler_execution span.
    def with_step(step)
      previous = Thread.current[SCOPE_KEY]
      handles = [step.handle]
      handles << step.span_handle if step.span_handle.positive?
      Thread.current[SCOPE_KEY] = Scope.new(step, handles)
      yield
    ensure
      Thread.current[SCOPE_KEY] = previous
    end

    def check_level(level)
      name = level.to_s
      raise ArgumentError, "level #{level.inspect} is not one of #{LEVELS.join(', ')}" unless LEVELS.include?(name)

      name
    end

    # A span whose step was already answered (its timeout elapsed) was ended
    # by the core; failing to end it again must not replace the handler's
    # own outcome.
    def end_span(handle, status)
      TaskerCore.bridge.span_end(handle, status)
    rescue NativeError => e
      Kernel.warn("TaskerCore: #{e.message}") if $VERBOSE
    end
    private_class_method :end_span
  end
end
