// Package depcheck holds the dependency hygiene test: every direct dependency in go.mod (a
// require without "// indirect", and every tool) must be listed with its reason in
// docs/dependencies.md, and every module listed there must still be one. It has no code of
// its own.
package depcheck
