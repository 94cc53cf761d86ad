// Package config loads Tasker's layered configuration.
//
// Values come from, lowest precedence first:
//
//  1. compiled-in defaults (Default);
//  2. config/tasker/base/*.toml;
//  3. config/tasker/environments/<env>/*.toml, env = LoadOptions.Env, else
//     $TASKER_ENV, else "production" (`tasker dev` defaults to "development");
//  4. TASKER_* environment variables;
//  5. the standard OpenTelemetry variables (OTEL_SDK_DISABLED,
//     OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER[_ARG], …),
//     which win because operators and platforms set them expecting every
//     OpenTelemetry SDK to obey.
//
// When no directory is given and ./config/tasker does not exist, the files
// embedded in the binary (package github.com/taskerhq/tasker/config) are used,
// so the binary works from any directory.
//
// Load records where every key's final value came from (Source), and every
// error names its origin — the file, or the environment variable — the key
// and the allowed values, so a bad deployment fails at start with a message
// that says what to fix.
//
// Adding a section (say [database]) means a struct field on Config with a
// toml tag, its defaults in Default, its checks in Validate, and any
// environment variables in env.go; unknown-key detection and provenance
// follow from the struct tags.
package config
