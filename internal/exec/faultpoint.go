//go:build !faults

package exec

// faultpoint marks a step of an execution where a test build (tag faults) can stop or kill
// the process; in every other build it does nothing and costs nothing.
func faultpoint(string, int64) {}
