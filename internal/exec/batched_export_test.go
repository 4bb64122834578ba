package exec

// SetAfterBatch installs a hook that runs after each committed batch of a batched run, with
// the number of batches so far.
func (e *Executor) SetAfterBatch(f func(batches int)) { e.hooks.afterBatch = f }
