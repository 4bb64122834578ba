package templates

import "time"

// RestorePanel is the request page's restore section: on a done deletion, what a restore would
// do and the form to ask for it; on a restore request, the restore as it stands now. Conflicts
// block the restore and show in red.
type RestorePanel struct {
	// URL is where the "Request restore" form posts.
	URL string
	// Offer shows the form: the deletion can be restored and the viewer may request.
	Offer bool
	// Pending marks the panel of a restore request (live check) rather than of a deletion.
	Pending bool
	// Note says why no restore is possible, or why it could not be evaluated.
	Note      string
	Lines     []RestoreLine
	Conflicts []RestoreConflict
	Expires   time.Time
	At        time.Time
	// Reason, TicketURL, Errors and Problem refill the form after a refused submission.
	Reason    string
	TicketURL string
	Errors    map[string]string
	Problem   string
}

// RestoreLine is one table of a restore: rows re-inserted, tombstones cleared or values
// re-attached.
type RestoreLine struct {
	Target  string
	Table   string
	Action  string // restore, untombstone or reattach
	Rows    int64
	Skipped int64
}

// RestoreConflict is a set of archived rows that cannot go back as they were.
type RestoreConflict struct {
	Target string
	Table  string
	Reason string
	Rows   int64
	Sample []string
}

// restoreVerb is a restore action in words.
func restoreVerb(action string) string {
	switch action {
	case "untombstone":
		return "clear tombstone"
	case "reattach":
		return "re-attach"
	}
	return "re-insert"
}
