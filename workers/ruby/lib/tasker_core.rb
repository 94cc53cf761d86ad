# frozen_string_literal: true

# TaskerCore runs Tasker step handlers written in Ruby inside Tasker's Go
# worker (libtasker.so). See docs/ruby.md in the Tasker repository.
#
# Loading it loads the Go runtime into the process; from then on fork raises
# TaskerCore::ForkError.
require_relative "tasker_core/version"
require_relative "tasker_core/errors"
require_relative "tasker_core/native"
require_relative "tasker_core/bridge"
require_relative "tasker_core/tracing"
require_relative "tasker_core/step_context"
require_relative "tasker_core/step_handler/base"
require_relative "tasker_core/worker"
