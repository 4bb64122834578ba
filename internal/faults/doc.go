// Package faults holds the fault suite: tests that break Tombstone's surroundings on purpose
// and check that every request still ends in a documented state. They restart PostgreSQL
// (`pg_ctl restart -m immediate` on private clusters the tests start themselves), kill the
// console worker at each step of an execution, hold locks and slow statements in the targets,
// and take the console database away while the targets are fine.
//
// The tests are built only with the faults tag, which also compiles the executor's fault
// points (internal/exec/faultpoint_faults.go): run them with `make test-faults`, i.e.
// `go test -tags faults ./internal/faults/`. They need PostgreSQL's server binaries (initdb,
// pg_ctl) for the private clusters, and the shared test server for the rest.
package faults
