# frozen_string_literal: true

# The unit tests load the real libtasker.so ($TASKER_FFI_LIB, which the Go
# test in ffi/ builds) with telemetry off; no database is needed.
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
ENV["TASKER_TELEMETRY_ENABLED"] ||= "false"
require "minitest/autorun"
require "tempfile"
require "tasker_core"

module TestHelpers
  # A step as the core hands it out; handle 0 is no step in flight, so
  # spans and records made for it start traces of their own.
  def step_data(overrides = {})
    {
      "handle" => 0, "handler" => "test.handler", "task_uuid" => "0190a000-0000-7000-8000-000000000001",
      "step_uuid" => "0190a000-0000-7000-8000-000000000002", "step_name" => "first",
      "namespace" => "unit", "task_name" => "unit_task", "task_version" => "1.0.0",
      "correlation_id" => "0190a000-0000-7000-8000-000000000003", "parent_correlation_id" => nil,
      "context" => { "even_number" => 6 }, "inputs" => { "operands" => [] }, "dependency_results" => {},
      "attempt" => 1, "max_attempts" => 3,
      "traceparent" => "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate" => ""
    }.merge(overrides)
  end

  # Runs the block with file descriptor 2 (where the Go logger writes)
  # redirected, and returns what was written.
  def capture_fd2
    saved = $stderr.dup
    Tempfile.create("stderr") do |f|
      $stderr.reopen(f)
      begin
        yield
      ensure
        $stderr.reopen(saved)
      end
      f.rewind
      return f.read
    end
  end
end
