# frozen_string_literal: true

require "test_helper"

# Exercises the C ABI through the real library: bad input is an error the
# caller sees, never a crash.
class NativeTest < Minitest::Test
  include TestHelpers

  def bridge = TaskerCore.bridge

  def test_bad_json_is_an_error_not_a_crash
    err = assert_raises(TaskerCore::NativeError) do
      TaskerCore::Native.check(TaskerCore::Native.tasker_step_complete(bridge.handle, 1, "{not json"))
    end
    assert_match(/step result: invalid JSON/, err.message)
    err = assert_raises(TaskerCore::NativeError) do
      TaskerCore::Native.check(TaskerCore::Native.tasker_step_complete(bridge.handle, 1, '{"success": false}'))
    end
    assert_match(/error: required/, err.message)
    err = assert_raises(TaskerCore::NativeError) do
      TaskerCore::Native.check(TaskerCore::Native.tasker_log(bridge.handle, 0, "info", "m", "[1, 2]"))
    end
    assert_match(/log fields: not a JSON object/, err.message)
    err = assert_raises(TaskerCore::NativeError) do
      TaskerCore::Native.check(TaskerCore::Native.tasker_worker_start(bridge.handle, '{"namespaces": ["a"], "colour": 1}'))
    end
    assert_match(/unknown field "colour"/, err.message)
    err = assert_raises(TaskerCore::NativeError) do
      TaskerCore::Native.check(TaskerCore::Native.tasker_worker_start(bridge.handle, '{"namespaces": []}'))
    end
    assert_match(/namespaces: at least one/, err.message)
    err = assert_raises(TaskerCore::NativeError) { TaskerCore::Native.check(TaskerCore::Native.tasker_span_end(bridge.handle, 1, "{}")) }
    assert_match(/names no open span/, err.message)
    err = assert_raises(TaskerCore::NativeError) { TaskerCore::Native.check(TaskerCore::Native.tasker_log(999_999, 0, "info", "m", nil)) }
    assert_match(/bridge handle 999999 is not open/, err.message)
  end

  def test_unknown_handles_and_levels
    err = assert_raises(TaskerCore::NativeError) { bridge.complete(424_242, { success: true, value: 1 }) }
    assert_match(/not in flight/, err.message)
    err = assert_raises(TaskerCore::NativeError) { bridge.log(424_242, "info", "m", {}) }
    assert_match(/names no step in flight/, err.message)
    err = assert_raises(TaskerCore::NativeError) { bridge.log(0, "loud", "m", {}) }
    assert_match(/"loud" is not one of/, err.message)
    assert_raises(ArgumentError) { TaskerCore::Tracing.event(:loud, "m") }
  end

  def test_child_tasks_need_a_step_and_a_valid_request
    err = assert_raises(TaskerCore::NativeError) { bridge.submit_child(0, { namespace: "a", name: "b" }) }
    assert_match(/only a step can start a child task/, err.message)
    err = assert_raises(TaskerCore::NativeError) { bridge.submit_child(0, { name: "b" }) }
    assert_match(/namespace: required/, err.message)
    err = assert_raises(TaskerCore::NativeError) { bridge.submit_child(0, { namespace: "a", name: "b", context: [1] }) }
    assert_match(/context: must be a JSON object/, err.message)
    err = assert_raises(TaskerCore::NativeError) { bridge.submit_child(0, { namespace: "a", name: "b", colour: 1 }) }
    assert_match(/unknown field "colour"/, err.message)
  end

  def test_next_step_without_a_worker_reports_stopped
    assert_equal :stopped, bridge.next_step(0.01)
  end

  def test_spans_nest_and_record_failures
    handles = []
    TaskerCore::Tracing.span(:info, "outer", a: 1) do
      handles << TaskerCore::Tracing.current_handle
      TaskerCore::Tracing.span(:debug, "inner") { handles << TaskerCore::Tracing.current_handle }
    end
    assert_equal 2, handles.uniq.size
    assert handles.all?(&:positive?)
    assert_equal 0, TaskerCore::Tracing.current_handle
    assert_raises(ZeroDivisionError) { TaskerCore::Tracing.span(:info, "failing") { 1 / 0 } }
    assert_equal 0, TaskerCore::Tracing.current_handle, "the span stack unwinds on error"
    assert_equal 42, TaskerCore::Tracing.span(:info, "value") { 42 }
  end

  def test_records_go_through_the_go_logger
    out = capture_fd2 { TaskerCore::Tracing.error("unit test record", order_id: 17, tags: %w[a b]) }
    line = out.lines.find { |l| l.include?("unit test record") }
    refute_nil line, "no record on fd 2: #{out.inspect}"
    assert_includes line, "component=ruby_worker"
    assert_includes line, "order_id=17"
    assert_includes line, "level=ERROR"
  end

  def test_fork_is_refused
    err = assert_raises(TaskerCore::ForkError) { fork { exit!(0) } }
    assert_match(/does not survive fork/, err.message)
    assert_raises(TaskerCore::ForkError) { Process.fork { exit!(0) } }
    assert system("true"), "spawning a program stays allowed"
  end
end
