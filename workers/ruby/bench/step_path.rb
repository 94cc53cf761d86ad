# frozen_string_literal: true

# Measures the Ruby side of one step — parse the step's JSON, run a no-op
# handler under the worker's code, encode the result, one call into the Go
# core — without a database: back to back ("hot"), and after an idle gap as a
# closed-loop benchmark sees it ("after idle"). `tasker bench
# handler-overhead` measures the whole path; this tells how much of it is
# Ruby's own work and how much is the machine waking up cold.
#
#   TASKER_FFI_LIB=… ruby workers/ruby/bench/step_path.rb [--runs 500] [--gap-ms 5] [--json FILE]
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
ENV["TASKER_TELEMETRY_ENABLED"] ||= "false"
ENV["TASKER_LOG_LEVEL"] ||= "warn"
require "optparse"
require "tasker_core"

opts = { runs: 500, gap_ms: 5.0, json: nil }
OptionParser.new do |o|
  o.on("--runs N", Integer, "measured steps per mode (default 500)") { |v| opts[:runs] = v }
  o.on("--gap-ms MS", Float, "idle time before each step in the after-idle mode (default 5)") { |v| opts[:gap_ms] = v }
  o.on("--json FILE", "also write the results as JSON") { |v| opts[:json] = v }
end.parse!
abort "--runs must be >= 1" if opts[:runs] < 1

noop = Class.new(TaskerCore::StepHandler::Base) { def call(_context) = nil }
worker = TaskerCore::Worker.new(namespaces: ["bench"], handlers: { "bench.noop" => noop }, database_url: "unused")
bridge = TaskerCore.bridge
payload = JSON.generate({
  "handle" => 0, "handler" => "bench.noop", "task_uuid" => "01a21553-1964-7c52-87a3-de5bcd20634a",
  "step_uuid" => "01a21553-1965-7d46-b7ae-79d723460b00", "step_name" => "noop", "namespace" => "bench",
  "task_name" => "noop", "task_version" => "1.0.0", "correlation_id" => "01a21553-1964-7c52-87a3-de5bcd20634b",
  "parent_correlation_id" => nil, "context" => {}, "inputs" => {}, "dependency_results" => {},
  "attempt" => 1, "max_attempts" => 1, "traceparent" => "", "tracestate" => "", "deadline_unix_ms" => 0
})

now = -> { Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) }
measure = lambda do |gap|
  samples = Array.new(opts[:runs]) do
    sleep(gap) if gap.positive?
    t = now.call
    worker.send(:encode, worker.execute(JSON.parse(payload)))
    bridge.next_step(0) # one call into the core and back, as completing a step is
    (now.call - t) / 1000.0
  end
  samples.sort!
  pct = ->(q) { samples[[(samples.size * q).ceil - 1, 0].max].round(1) }
  { "p50_us" => pct.call(0.50), "p95_us" => pct.call(0.95), "p99_us" => pct.call(0.99), "max_us" => samples.last.round(1) }
end

50.times { worker.execute(JSON.parse(payload)) } # warm up
results = { "benchmark" => "ruby_step_path", "ruby" => RUBY_VERSION, "runs" => opts[:runs],
            "hot" => measure.call(0), "after_idle" => measure.call(opts[:gap_ms] / 1000.0),
            "gap_ms" => opts[:gap_ms], "load_avg_1m" => (File.read("/proc/loadavg").split.first.to_f rescue -1) }
puts format("ruby step path (Ruby %s, %d runs, load average %.2f)", RUBY_VERSION, opts[:runs], results["load_avg_1m"])
puts format("%-22s %8s %8s %8s %8s", "", "p50 µs", "p95 µs", "p99 µs", "max µs")
[["hot (back to back)", "hot"], ["after #{opts[:gap_ms]} ms idle", "after_idle"]].each do |label, key|
  r = results[key]
  puts format("%-22s %8.1f %8.1f %8.1f %8.1f", label, r["p50_us"], r["p95_us"], r["p99_us"], r["max_us"])
end
File.write(opts[:json], JSON.pretty_generate(results) + "\n") if opts[:json]
