# frozen_string_literal: true

# The no-op handler `tasker bench handler-overhead` runs, so that what it
# measures is the framework's cost per step, not the handler's.
require "tasker_core"

module TaskerBench
  class Noop < TaskerCore::StepHandler::Base
    handles "bench.noop"

    def call(_context) = nil
  end
end
