# frozen_string_literal: true

require_relative "bridge"
require_relative "tracing"
require_relative "step_context"
require_relative "step_handler/base"

module TaskerCore
  # Worker serves the steps of some namespaces with Ruby handlers. The Go
  # core claims each step, keeps its lease alive, enforces its timeout and
  # submits its result; `concurrency` Ruby threads take steps from it (with
  # the GVL released while they wait) and run the handlers.
  #
  #   TaskerCore::Worker.run(namespaces: ["payments"], handlers: {"payments.charge" => Charge})
  #
  # SIGTERM and SIGINT stop it gracefully: no new steps are claimed, steps in
  # flight finish (up to shutdown_grace seconds), then run returns.
  class Worker
    # How long one wait for a step lasts; bounds how late a thread notices
    # anything but a stop, which the core reports at once.
    POLL_TIMEOUT = 0.5

    def self.run(**options)
      new(**options).run
    end

    attr_reader :namespaces, :handlers, :concurrency

    # handlers maps handler names to Base subclasses or callables; default:
    # every handler registered with Base.handles. database_url defaults to
    # $DATABASE_URL. templates are directories of template YAML files the
    # core registers first. on_ready is called once the worker serves.
    def initialize(namespaces:, handlers: StepHandler.registry, concurrency: 4,
                   database_url: ENV.fetch("DATABASE_URL", nil), templates: [], lease_ms: nil,
                   poll_interval_ms: nil, shutdown_grace: 30, bridge: nil, signals: %w[TERM INT], on_ready: nil)
      @namespaces = Array(namespaces).map(&:to_s)
      @handlers = handlers.transform_keys(&:to_s)
      @concurrency = Integer(concurrency)
      raise ArgumentError, "namespaces: at least one namespace is required" if @namespaces.empty?
      raise ArgumentError, "handlers: at least one handler is required" if @handlers.empty?
      raise ArgumentError, "concurrency: must be >= 1, got #{@concurrency}" if @concurrency < 1
      raise ArgumentError, "database_url: required (or set DATABASE_URL)" if database_url.to_s.empty?

      @config = { namespaces: @namespaces, handlers: @handlers.keys, database_url: database_url,
                  concurrency: @concurrency, templates: Array(templates) }
      @config[:lease_ms] = Integer(lease_ms) if lease_ms
      @config[:poll_interval_ms] = Integer(poll_interval_ms) if poll_interval_ms
      @config[:shutdown_grace_ms] = (shutdown_grace * 1000).to_i
      @shutdown_grace = shutdown_grace
      @bridge = bridge
      @signals = signals
      @on_ready = on_ready
      @stop_r, @stop_w = IO.pipe
    end

    # Starts the worker and blocks until stop (or a signal) and a graceful
    # shutdown.
    def run
      bridge = (@bridge ||= TaskerCore.bridge)
      bridge.start_worker(@config)
      previous = trap_signals
      threads = Array.new(@concurrency) { |i| Thread.new { serve(bridge, i) } }
      Tracing.info("ruby worker running", namespaces: @namespaces, handlers: @handlers.keys,
                                          concurrency: @concurrency, pid: Process.pid)
      @on_ready&.call
      @stop_r.read(1)
      Tracing.info("ruby worker stopping; steps in flight finish first")
      # The threads keep taking and finishing the steps already claimed until
      # the core reports the worker stopped.
      bridge.stop_worker(@shutdown_grace)
      threads.each(&:join)
      Tracing.info("ruby worker stopped")
      nil
    ensure
      restore_signals(previous) if previous
    end

    # Asks run to shut down gracefully (safe from a signal handler or any thread).
    def stop
      @stop_w.write_nonblock(".", exception: false)
    end

    # Runs one step's handler and returns the result Hash submitted to the
    # core (exposed for tests).
    def execute(data)
      step = StepContext.new(data)
      Tracing.with_step(step) { outcome(step) }
    end

    private

    def serve(bridge, index)
      Thread.current.name = "tasker-worker-#{index}"
      loop do
        data = bridge.next_step(POLL_TIMEOUT)
        break if data == :stopped
        next if data == :timeout

        result = encode(execute(data))
        begin
          bridge.complete(data["handle"], result)
        rescue NativeError => e
          # The worker gave up on the step (timeout, shutdown): nothing to do.
          Tracing.warn("step result not accepted", error: e.message)
        end
      end
    rescue StandardError => e
      # A broken thread would silently lower concurrency: report and stop.
      Tracing.error("ruby worker thread failed", error: "#{e.class}: #{e.message}")
      stop
    end

    # The core runs each step's handler_execution span (from handing the
    # step out to its completion) and ends it with the outcome returned here.
    def outcome(step)
      { success: true, value: invoke(@handlers[step.handler_name], step) }
    rescue PermanentError => e
      failure(e, retryable: false)
    rescue StandardError, ScriptError => e
      failure(e, retryable: true)
    end

    def invoke(handler, step)
      if handler.is_a?(Class)
        handler.new.run(step)
      else
        handler.call(step)
      end
    end

    # encode returns the JSON of an execute result. Encoding here, not in the
    # core, turns an unencodable result into an error the handler's author
    # can read.
    def encode(result)
      JSON.generate(result)
    rescue JSON::GeneratorError, Encoding::UndefinedConversionError => e
      JSON.generate({ success: false, error: { type: "TaskerCore::ResultEncodingError", retryable: false,
                                               message: "the handler's result cannot be encoded as JSON: #{e.message}" } })
    end

    def failure(error, retryable:)
      Tracing.event(retryable ? :warn : :error, "handler failed", error_type: error.class.name,
                                                                  error: error.message, retryable: retryable)
      err = { type: error.class.name || "AnonymousError", message: message_of(error), retryable: retryable }
      code = error.respond_to?(:error_code) ? error.error_code : nil
      err[:code] = code.to_s if code
      { success: false, error: err }
    end

    def message_of(error)
      m = error.message.to_s
      m.empty? ? error.class.name.to_s : m
    end

    def trap_signals
      @signals.to_h { |sig| [sig, Signal.trap(sig) { stop }] }
    end

    def restore_signals(previous)
      previous.each { |sig, handler| Signal.trap(sig, handler || "DEFAULT") }
    end
  end
end
