// Package soak holds the soak test: a bounded run of the whole request lifecycle under load,
// checked for its invariants at the end. Simulated operators preview random roots of the demo
// targets, request them, and approve, reject or cancel; several executors run the approved
// requests concurrently (with a reconciler); writers keep inserting into the target tables.
//
// At the end it checks that no request executed twice, that every done request changed
// exactly what it previewed, that no target has orphan rows (every foreign key, and every
// `also` link of the policy), that the audit chain verifies with one event per transition, and
// that goroutines and connections are back to their baseline. It prints the throughput.
//
// It is built only with the soak tag: `make soak`, i.e. `go test -tags soak ./internal/soak/`.
// SOAK_DURATION (a Go duration, default 5m) bounds the load; everything runs on private
// PostgreSQL clusters on 127.0.0.1.
package soak
