// Package static holds the console's stylesheet, icon and the vendored htmx (2.0.11, from the
// htmx.org npm package's dist/htmx.min.js), embedded in the binary. internal/web serves them
// under content-hashed names with long cache lifetimes.
package static

import (
	"embed"
	"io/fs"
)

//go:embed app.css htmx.min.js icon.svg
var files embed.FS

// FS returns the embedded files.
func FS() fs.FS { return files }
