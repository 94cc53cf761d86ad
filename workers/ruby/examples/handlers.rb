# frozen_string_literal: true

# Ruby versions of the handlers of the example templates (examples/templates
# in the Tasker repository): the squaring workflows and the retry example.
# Results are decimal strings because they outgrow 64 bits and JSON numbers
# lose precision beyond 2^53.
#
#   tasker-ruby-worker --namespace linear_workflow,diamond_workflow --require examples/handlers.rb
require "tasker_core"

module TaskerExamples
  # Squares context.even_number (a root step) or the product of the
  # dependency results named in inputs.operands. The operands are configured
  # rather than taken from dependency_results because that holds every
  # completed ancestor, not just the parents.
  class Square < TaskerCore::StepHandler::Base
    handles "linear.square", "diamond.square", "tree.square", "mixed_dag.square", "single.square"

    # Each squaring doubles the size: stop a long hand-written chain from
    # exhausting memory.
    MAX_RESULT_BITS = 1 << 20

    def call(_context)
      operands = inputs.fetch("operands", [])
      product =
        if operands.empty?
          if dependency_results.any?
            # Squaring the task input here would silently give a wrong answer
            # for a template that forgot to list its operands.
            raise TaskerCore::PermanentError,
                  "step #{step_name.inspect} has dependencies but no inputs.operands naming which to multiply"
          end
          even_number
        else
          operands.reduce(1) do |acc, op|
            acc *= decimal_result(op)
            if acc.bit_length > MAX_RESULT_BITS / 2
              raise TaskerCore::PermanentError, "step #{step_name.inspect}: result would exceed #{MAX_RESULT_BITS} bits"
            end

            acc
          end
        end
      TaskerCore::Tracing.debug("squaring", operand_digits: product.to_s.length)
      (product * product).to_s
    end

    private

    def even_number
      n = task_context.fetch("even_number") do
        raise TaskerCore::PermanentError, "step #{step_name.inspect}: even_number: task context has no key \"even_number\""
      end
      unless n.is_a?(Integer) && n.between?(2, 100) && n.even?
        raise TaskerCore::PermanentError,
              "step #{step_name.inspect}: even_number must be an even integer from 2 to 100, got #{n.inspect}"
      end
      n
    end

    def decimal_result(name)
      s = dependency_results.fetch(name) do
        raise TaskerCore::PermanentError, "step #{step_name.inspect}: no result for dependency #{name.inspect}"
      end
      unless s.is_a?(String) && s.match?(/\A[0-9]+\z/)
        raise TaskerCore::PermanentError,
              "step #{step_name.inspect}: result of dependency #{name.inspect} is not a decimal string: #{s.inspect}"
      end
      Integer(s, 10)
    end
  end

  # Starts a task of the template named by inputs.child
  # ("namespace/name@version") with the parent's even_number and returns the
  # child's UUID. The child may run in any runtime; it joins this trace.
  class SpawnChild < TaskerCore::StepHandler::Base
    handles "nested.spawn_child"

    def call(context)
      ref = inputs.fetch("child") { raise TaskerCore::PermanentError, "step #{step_name.inspect}: step inputs has no key \"child\"" }
      m = %r{\A([a-z][a-z0-9_]*)/([a-z][a-z0-9_]*)(?:@(\d+\.\d+\.\d+))?\z}.match(ref)
      raise TaskerCore::PermanentError, "step #{step_name.inspect}: inputs.child: #{ref.inspect} is not namespace/name@version" unless m

      n = task_context["even_number"]
      id = context.submit_child_task(namespace: m[1], name: m[2], version: m[3], context: { "even_number" => n })
      { "child_task_uuid" => id }
    end
  end

  # Fails with a retryable error on the first inputs.fail_count attempts,
  # then succeeds.
  class FailNTimes < TaskerCore::StepHandler::Base
    handles "retry.fail_n_times"

    def call(_context)
      fail_count = inputs.fetch("fail_count") do
        raise TaskerCore::PermanentError, "step #{step_name.inspect}: step inputs has no key \"fail_count\""
      end
      if attempt <= fail_count
        raise TaskerCore::RetryableError,
              "step #{step_name.inspect}: planned failure on attempt #{attempt} (this step fails its first #{fail_count} attempts)"
      end
      { "attempts_before_success" => attempt }
    end
  end
end
