// Package examples embeds the example task templates so that binaries and
// tests can use them without locating the source tree at run time.
package examples

import "embed"

// Templates holds templates/*.yaml. It is a variable only because go:embed
// requires one; an embed.FS is read-only.
//
//go:embed templates/*.yaml
var Templates embed.FS
