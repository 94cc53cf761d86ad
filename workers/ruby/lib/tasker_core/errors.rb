# frozen_string_literal: true

module TaskerCore
  # Base of every error this library raises.
  class Error < StandardError; end

  # A handler failure with an optional code stored next to the attempt
  # (e.g. a payment provider's decline code).
  class StepError < Error
    attr_reader :error_code

    def initialize(message = nil, error_code: nil)
      super(message)
      @error_code = error_code
    end
  end

  # Fails the step at once: no retry, the task ends in error (bad input, a
  # business rule). Subclass it to record a more specific error type.
  class PermanentError < StepError; end

  # Fails the attempt; the step runs again while attempts remain. Any other
  # StandardError is retried too: raise this to say so explicitly.
  class RetryableError < StepError; end

  # Raised by fork once the library is loaded: the Go runtime inside the
  # process does not survive fork (the child has its memory but none of its
  # threads), so a forked child would hang on its first call into it.
  class ForkError < Error; end

  # An error reported by the Go core (bad input to a native call, a worker
  # that cannot start).
  class NativeError < Error; end
end
