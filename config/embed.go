// Package config embeds the TOML configuration under config/tasker into the
// binary, so `tasker` started from any directory still has its base and
// environment files. internal/config reads these only when no config
// directory is given and ./config/tasker does not exist.
package config

import "embed"

// FS holds tasker/base/*.toml and tasker/environments/<env>/*.toml.
//
//go:embed tasker
var FS embed.FS
