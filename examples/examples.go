// Package examples holds the example policy, embedded so that `console demo` can write it out
// next to the demo targets it describes.
package examples

import (
	_ "embed"
	"slices"
)

//go:embed tombstone.yaml
var policy []byte

// Policy returns the demo policy (examples/tombstone.yaml). It expects TOMBSTONE_DATABASE_URL,
// DEMO_APP_URL, DEMO_POS_URL and DEMO_ALERTS_URL in the environment. The slice is a copy; the
// caller may keep or change it.
func Policy() []byte { return slices.Clone(policy) }
