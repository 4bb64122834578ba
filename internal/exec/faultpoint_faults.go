//go:build faults

package exec

import (
	"fmt"
	"os"
	"sync"
)

// FaultEnv names the environment variable that stops a process built with the faults tag at
// a step: it prints "fault point STEP reached (request N)" on standard error and blocks for
// ever, for the test to kill it. With FaultExitEnv set as well it exits with status 3 at once
// instead, as if it had crashed.
const (
	FaultEnv     = "TOMBSTONE_FAULT_AT"
	FaultExitEnv = "TOMBSTONE_FAULT_EXIT"
)

var (
	faultMu   sync.Mutex
	faultHook func(step string, requestID int64)
)

// SetFaultHook makes every fault point call hook (nil removes it), in this process only. The
// hook runs on the executing goroutine, inside whatever transaction is open at that step, so
// it can restart a server or hold the execution there. Only test builds have it.
func SetFaultHook(hook func(step string, requestID int64)) {
	faultMu.Lock()
	defer faultMu.Unlock()
	faultHook = hook
}

func faultpoint(step string, id int64) {
	faultMu.Lock()
	hook := faultHook
	faultMu.Unlock()
	if hook != nil {
		hook(step, id)
	}
	if os.Getenv(FaultEnv) != step {
		return
	}
	fmt.Fprintf(os.Stderr, "fault point %s reached (request %d)\n", step, id)
	if os.Getenv(FaultExitEnv) != "" {
		os.Exit(3)
	}
	select {}
}
