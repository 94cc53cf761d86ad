# frozen_string_literal: true

require_relative "../errors"

module TaskerCore
  module StepHandler
    @registry = {}
    @registry_lock = Mutex.new

    class << self
      # Registers handler (a Base subclass, or anything that responds to
      # call(context)) under name, the handler name templates use.
      def register(name, handler)
        name = name.to_s
        @registry_lock.synchronize do
          if @registry.key?(name) && !@registry[name].equal?(handler)
            raise ArgumentError, "a handler named #{name.inspect} is already registered (#{@registry[name]})"
          end

          @registry[name] = handler
        end
      end

      # A copy of the registered handlers by name.
      def registry = @registry_lock.synchronize { @registry.dup }
    end

    # Base is what Ruby step handlers subclass:
    #
    #   class ChargeCard < TaskerCore::StepHandler::Base
    #     handles "payments.charge_card"
    #
    #     def call(context)
    #       raise TaskerCore::PermanentError, "no amount" unless inputs["amount"]
    #       { "charged" => inputs["amount"] }
    #     end
    #   end
    #
    # A new instance runs each step. call returns the step's result (anything
    # JSON can encode) or raises: PermanentError fails the step at once,
    # RetryableError or any other StandardError fails the attempt and the
    # step runs again while attempts remain; the error's class is stored as
    # its error type, its message as its message.
    class Base
      # Registers this class under the given handler names.
      def self.handles(*names)
        names.each { |n| StepHandler.register(n, self) }
      end

      # The step being run (a TaskerCore::StepContext).
      attr_reader :context

      def call(_context)
        raise NotImplementedError, "#{self.class} must implement call(context)"
      end

      def correlation_id = context.correlation_id
      def parent_correlation_id = context.parent_correlation_id
      def task_uuid = context.task_uuid
      def step_uuid = context.step_uuid
      def step_name = context.step_name
      def namespace = context.namespace
      def task_context = context.task_context
      def inputs = context.inputs
      def dependency_results = context.dependency_results
      def dependency_result(step) = context.dependency_result(step)
      def attempt = context.attempt
      def max_attempts = context.max_attempts

      # Runs the handler for context (the worker calls this).
      def run(context)
        @context = context
        call(context)
      end
    end
  end
end
