# frozen_string_literal: true

require "json"
require_relative "native"

module TaskerCore
  # Bridge is the process's connection to the Go core: its telemetry (logger,
  # tracer, OTLP exporters, configured as for every Tasker process by config
  # files and TASKER_* / OTEL_* variables) and, once started, its worker.
  # TaskerCore.bridge is the one every part of this library uses.
  class Bridge
    attr_reader :handle

    def initialize(service_name: nil, log_level: nil)
      opts = {}
      opts[:service_name] = service_name if service_name
      opts[:log_level] = log_level.to_s if log_level
      # The Go runtime sees the environment the process started with; pass
      # the configuration variables as Ruby sees them now.
      opts[:env] = ENV.to_h.select { |k, _| k.start_with?("TASKER_", "OTEL_") }
      # The Go runtime sees the environment the process started with; pass
      # the configuration variables as Ruby sees them now.
      opts[:env] = ENV.to_h.select { |k, _| k.start_with?("TASKER_", "OTEL_") }
      out = FFI::MemoryPointer.new(:uint64)
      Native.check(Native.tasker_bridge_open(JSON.generate(opts), out))
      @handle = out.read_uint64
      @closed = false
    end

    # Starts the worker: config is a Hash of the keys documented in docs/ruby.md
    # (namespaces, handlers, database_url, concurrency, lease_ms, ...).
    def start_worker(config)
      Native.check(Native.tasker_worker_start(@handle, JSON.generate(config)))
    end

    # Stops claiming steps and waits up to timeout for those in flight; other
    # threads must keep calling next_step and completing steps meanwhile.
    def stop_worker(timeout)
      Native.check(Native.tasker_worker_stop(@handle, (timeout * 1000).to_i))
    end

    # Waits up to timeout seconds for a step: returns its Hash, :timeout or
    # :stopped.
    def next_step(timeout)
      out = (Thread.current[:tasker_core_next_out] ||= FFI::MemoryPointer.new(:pointer))
      rc = Native.tasker_next_step(@handle, (timeout * 1000).to_i, out)
      case rc
      when 1 then JSON.parse(Native.take_string(out.read_pointer))
      when 0 then :timeout
      when -1 then :stopped
      else raise NativeError, Native.take_string(out.read_pointer)
      end
    end

    # Answers a step with result (a Hash, or its JSON).
    def complete(step_handle, result)
      json = result.is_a?(String) ? result : JSON.generate(result)
      Native.check(Native.tasker_step_complete(@handle, step_handle, json))
    end

    # Creates a child task from inside the step or span handle; returns its
    # task UUID.
    def submit_child(handle, request)
      out = FFI::MemoryPointer.new(:pointer)
      Native.check(Native.tasker_step_submit_child(@handle, handle, JSON.generate(request), out))
      Native.take_string(out.read_pointer)
    end

    def log(handle, level, message, fields)
      Native.check(Native.tasker_log(@handle, handle, level.to_s, message.to_s, fields_json(fields)))
    end

    def span_start(parent, name, attributes)
      out = FFI::MemoryPointer.new(:uint64)
      Native.check(Native.tasker_span_start(@handle, parent, name.to_s, fields_json(attributes), out))
      out.read_uint64
    end

    def span_end(span_handle, status = nil)
      Native.check(Native.tasker_span_end(@handle, span_handle, status && JSON.generate(status)))
    end

    def flush(timeout = 5)
      Native.check(Native.tasker_flush(@handle, (timeout * 1000).to_i))
    end

    # Stops the worker if it runs and flushes telemetry. Idempotent.
    def close
      return if @closed

      @closed = true
      Native.check(Native.tasker_bridge_close(@handle))
    end

    private

    def fields_json(fields)
      return nil if fields.nil? || fields.empty?

      JSON.generate(fields)
    end
  end

  @bridge = nil
  @bridge_options = {}
  @bridge_lock = Mutex.new

  class << self
    # Sets the telemetry options of the process's bridge (service_name,
    # log_level). Only before the bridge is first used.
    def configure(**options)
      @bridge_lock.synchronize do
        raise Error, "TaskerCore.configure must be called before the bridge is first used" if @bridge

        @bridge_options = @bridge_options.merge(options)
      end
    end

    # The process's Bridge, opened on first use and closed (telemetry
    # flushed) at exit.
    def bridge
      @bridge_lock.synchronize do
        return @bridge if @bridge

        @bridge = Bridge.new(**@bridge_options)
        at_exit { @bridge.close }
        @bridge
      end
    end
  end
end
