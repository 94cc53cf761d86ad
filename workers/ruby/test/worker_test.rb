# frozen_string_literal: true

require "test_helper"
require_relative "../examples/handlers"

class WorkerTest < Minitest::Test
  include TestHelpers

  class Boom < StandardError; end

  def worker(handlers)
    TaskerCore::Worker.new(namespaces: ["unit"], handlers: handlers, database_url: "postgres://unused")
  end

  def test_success_is_the_handlers_value
    w = worker("unit.ok" => ->(ctx) { { "step" => ctx.step_name } })
    assert_equal({ success: true, value: { "step" => "first" } }, w.execute(step_data("handler" => "unit.ok")))
  end

  def test_any_exception_is_retryable_with_its_class_and_message
    w = worker("unit.boom" => ->(_) { raise Boom, "it broke" })
    r = w.execute(step_data("handler" => "unit.boom"))
    assert_equal({ success: false, error: { type: "WorkerTest::Boom", message: "it broke", retryable: true } }, r)
  end

  def test_permanent_error_is_not_retryable_and_keeps_its_code
    w = worker("unit.no" => ->(_) { raise TaskerCore::PermanentError.new("declined", error_code: "E42") })
    r = w.execute(step_data("handler" => "unit.no"))
    assert_equal({ success: false, error: { type: "TaskerCore::PermanentError", message: "declined",
                                            retryable: false, code: "E42" } }, r)
  end

  def test_unencodable_result_fails_permanently
    w = worker("unit.nan" => ->(_) { Float::NAN })
    r = JSON.parse(w.send(:encode, w.execute(step_data("handler" => "unit.nan"))))
    refute r["success"]
    assert_equal "TaskerCore::ResultEncodingError", r["error"]["type"]
    refute r["error"]["retryable"]
    assert_equal({ "success" => true, "value" => [1] }, JSON.parse(w.send(:encode, { success: true, value: [1] })))
  end

  def test_example_square_handlers
    w = worker(TaskerCore::StepHandler.registry)
    root = w.execute(step_data("handler" => "linear.square"))
    assert_equal({ success: true, value: "36" }, root)
    big = "3" * 30
    r = w.execute(step_data("handler" => "diamond.square", "inputs" => { "operands" => %w[b c] },
                            "dependency_results" => { "b" => big, "c" => "2" }))
    assert_equal (Integer(big) * 2)**2, Integer(r[:value])
    bad = w.execute(step_data("handler" => "linear.square", "context" => { "even_number" => 7 }))
    assert_equal false, bad[:error][:retryable]
    assert_match(/even integer from 2 to 100/, bad[:error][:message])
    forgot = w.execute(step_data("handler" => "linear.square", "dependency_results" => { "x" => "4" }))
    assert_match(/no inputs.operands/, forgot[:error][:message])
  end

  def test_arguments_are_checked
    assert_raises(ArgumentError) { TaskerCore::Worker.new(namespaces: [], handlers: { "a" => -> {} }, database_url: "x") }
    assert_raises(ArgumentError) { TaskerCore::Worker.new(namespaces: ["a"], handlers: {}, database_url: "x") }
    assert_raises(ArgumentError) do
      TaskerCore::Worker.new(namespaces: ["a"], handlers: { "a" => -> {} }, database_url: "x", concurrency: 0)
    end
  end
end
