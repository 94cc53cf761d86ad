// Package telemetry turns the [telemetry] configuration into OpenTelemetry
// trace, metric and log providers, and builds the process's slog logger.
//
// New returns the providers instead of installing them globally: the engine
// passes them to whatever needs them (tracing, metrics registry, logger), so
// two configurations can coexist in one test binary and nothing depends on
// import order or init. A caller that wants the otel globals set (for
// third-party instrumentation) does it once in main.
//
// A telemetry backend that is down, refusing, or slow must never block or
// fail the engine. Export is therefore batched and bounded: spans and log
// records beyond a fixed queue are dropped rather than waited for, each
// export is bounded by the configured timeout, failures are counted
// (Providers.Dropped) and reported through the process logger — one warning,
// then a summary at most once a minute — and Shutdown gives up at the
// shutdown timeout, abandoning what it could not send. A collector that does
// not accept a signal at all (gRPC Unimplemented, HTTP 404) has that signal
// turned off with one warning, rather than one warning per batch.
//
// Each signal (traces, metrics, logs) has its own exporter — OTLP, console or
// none — and, for OTLP, its own endpoint and protocol, as the OpenTelemetry
// environment variables allow; internal/config resolves those variables.
package telemetry
