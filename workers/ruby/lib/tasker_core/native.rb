# frozen_string_literal: true

require "ffi"
require_relative "errors"

module TaskerCore
  # Native is the C ABI of libtasker.so (built from the repository's ffi/
  # directory). Every call that can fail returns NULL or an error message;
  # the wrappers below raise NativeError with it. Calls that wait are
  # attached with blocking: true so other Ruby threads run meanwhile.
  module Native
    extend FFI::Library

    # Where the library is looked for: $TASKER_FFI_LIB, else next to this file.
    def self.library_path
      ENV.fetch("TASKER_FFI_LIB") { File.expand_path("libtasker.so", __dir__) }
    end

    path = library_path
    unless File.exist?(path)
      raise LoadError, "TaskerCore: #{path} does not exist; build it from the repository root with " \
                       "`go build -buildmode=c-shared -o workers/ruby/lib/tasker_core/libtasker.so ./ffi` " \
                       "or point TASKER_FFI_LIB at it"
    end
    ffi_lib path, FFI::Library::LIBC

    attach_function :tasker_bridge_open, %i[string pointer], :pointer, blocking: true
    attach_function :tasker_bridge_close, %i[uint64], :pointer, blocking: true
    attach_function :tasker_worker_start, %i[uint64 string], :pointer, blocking: true
    attach_function :tasker_worker_stop, %i[uint64 int64], :pointer, blocking: true
    attach_function :tasker_next_step, %i[uint64 int64 pointer], :int, blocking: true
    attach_function :tasker_step_complete, %i[uint64 uint64 string], :pointer
    attach_function :tasker_step_submit_child, %i[uint64 uint64 string pointer], :pointer, blocking: true
    attach_function :tasker_log, %i[uint64 uint64 string string string], :pointer
    attach_function :tasker_span_start, %i[uint64 uint64 string string pointer], :pointer
    attach_function :tasker_span_end, %i[uint64 uint64 string], :pointer
    attach_function :tasker_flush, %i[uint64 int64], :pointer, blocking: true
    attach_function :tasker_free, %i[pointer], :void
    # Strings the library returns come from C malloc: freeing them with libc
    # directly saves a call into the Go runtime on every step.
    attach_function :libc_free, :free, %i[pointer], :void

    module_function

    # check raises the error message ptr holds, if any, and frees it.
    def check(ptr)
      return nil if ptr.null?

      message = ptr.read_string.force_encoding(Encoding::UTF_8)
      libc_free(ptr)
      raise NativeError, message
    end

    def take_string(ptr)
      s = ptr.read_string.force_encoding(Encoding::UTF_8)
      libc_free(ptr)
      s
    end
  end

  # Refuses fork once the Go runtime is loaded (see ForkError). Process._fork
  # is what fork, Kernel#fork, Process.fork and IO.popen("-") call since
  # Ruby 3.1; spawn, system and backticks do not fork the interpreter and
  # stay allowed.
  module ForkGuard
    def _fork
      raise ForkError, "fork is not allowed once TaskerCore is loaded: the Go runtime of libtasker.so " \
                       "does not survive fork. Run separate worker processes (spawn) instead."
    end
  end
  Process.singleton_class.prepend(ForkGuard)
end
