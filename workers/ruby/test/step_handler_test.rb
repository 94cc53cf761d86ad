# frozen_string_literal: true

require "test_helper"

class StepHandlerTest < Minitest::Test
  include TestHelpers

  class Echo < TaskerCore::StepHandler::Base
    handles "unit.echo"

    def call(context)
      { "corr" => correlation_id, "parent" => parent_correlation_id, "task" => task_uuid, "step" => step_uuid,
        "inputs" => inputs, "deps" => dependency_results, "n" => context.input("even_number"),
        "same" => context.equal?(self.context) }
    end
  end

  def test_base_readers_come_from_the_step
    ctx = TaskerCore::StepContext.new(step_data("parent_correlation_id" => "p-1",
                                                "dependency_results" => { "a" => "36" }))
    out = Echo.new.run(ctx)
    assert_equal({ "corr" => ctx.correlation_id, "parent" => "p-1", "task" => ctx.task_uuid, "step" => ctx.step_uuid,
                   "inputs" => { "operands" => [] }, "deps" => { "a" => "36" }, "n" => 6, "same" => true }, out)
    assert_equal "36", ctx.dependency_result(:a)
    assert_equal "4bf92f3577b34da6a3ce929d0e0e4736", ctx.trace_id
    refute ctx.retry?
    refute ctx.last_attempt?
  end

  def test_handles_registers_and_refuses_a_second_owner
    assert_equal Echo, TaskerCore::StepHandler.registry["unit.echo"]
    err = assert_raises(ArgumentError) { Class.new(TaskerCore::StepHandler::Base) { handles "unit.echo" } }
    assert_match(/already registered/, err.message)
  end

  def test_base_without_call_is_an_error
    assert_raises(NotImplementedError) { TaskerCore::StepHandler::Base.new.run(TaskerCore::StepContext.new(step_data)) }
  end

  def test_step_errors_carry_codes
    e = TaskerCore::PermanentError.new("declined", error_code: "do_not_honor")
    assert_equal "do_not_honor", e.error_code
    assert_kind_of TaskerCore::StepError, TaskerCore::RetryableError.new("x")
  end
end
