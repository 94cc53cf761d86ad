# frozen_string_literal: true

require_relative "lib/tasker_core/version"

Gem::Specification.new do |s|
  s.name = "tasker_core"
  s.version = TaskerCore::VERSION
  s.summary = "Ruby step handlers for Tasker, running inside Tasker's Go worker through FFI"
  s.description = <<~DESC
    Runs Tasker step handlers written in Ruby. The Go core (libtasker.so, built from ffi/)
    claims steps, renews their leases, enforces timeouts and submits results; Ruby runs the
    handlers. Logs and spans go through the core's logger and OpenTelemetry exporters.
  DESC
  s.authors = ["Tasker contributors"]
  s.license = "MIT"
  s.required_ruby_version = ">= 3.1"
  s.files = Dir["lib/**/*.rb", "bin/*", "examples/*.rb"]
  s.bindir = "bin"
  s.executables = ["tasker-ruby-worker"]
  s.add_dependency "ffi", ">= 1.15"
end
