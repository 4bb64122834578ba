package exec

// The steps of an execution where a fault can be injected (in a build with the faults tag:
// TOMBSTONE_FAULT_AT or SetFaultHook). Each is reached on the goroutine running the request.
const (
	// FaultClaimed: the request moved to running and execution_started is committed; no
	// target transaction is open yet.
	FaultClaimed = "claimed"
	// FaultArchived: a single-target transaction has archived the rows it will change.
	FaultArchived = "archived"
	// FaultApplied: a target transaction has done everything but COMMIT (single target, or a
	// target of an ordered multi-target run).
	FaultApplied = "applied"
	// FaultCommitted: the single-target transaction committed; the outcome is not recorded
	// in the console database yet.
	FaultCommitted = "committed"
	// FaultPrepared: every target of a two-phase run is prepared; no decision is recorded.
	FaultPrepared = "prepared"
	// FaultDecided: the commit decision is durable; no COMMIT PREPARED has run yet.
	FaultDecided = "decided"
)
