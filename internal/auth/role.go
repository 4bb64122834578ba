package auth

import "slices"

// Role is what a user may do. Roles are ordered: each one can do everything the roles before
// it can.
type Role string

// The roles, from least to most powerful.
const (
	Viewer    Role = "viewer"    // search and preview
	Requester Role = "requester" // and ask for deletions
	Approver  Role = "approver"  // and approve other people's requests
	Admin     Role = "admin"     // and manage users; no power over the two-person rule
)

var roleOrder = []Role{Viewer, Requester, Approver, Admin}

// Roles lists every role, least powerful first.
func Roles() []Role { return slices.Clone(roleOrder) }

// ParseRole returns the role named s, or a ValidationError for field "role".
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", &ValidationError{Field: "role", Message: "must be one of viewer, requester, approver, admin"}
	}
	return r, nil
}

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return slices.Contains(roleOrder, r) }

// AtLeast reports whether r is min or more powerful. An invalid role is below everything.
func (r Role) AtLeast(min Role) bool {
	i, j := slices.Index(roleOrder, r), slices.Index(roleOrder, min)
	return i >= 0 && j >= 0 && i >= j
}

// Action is something a role may or may not do.
type Action string

// Actions checked by the console. Add one here, with its least role in actionRole, rather than
// comparing roles at the call site.
const (
	Search     Action = "search"     // search roots and open previews
	ViewAudit  Action = "view-audit" // read the audit log
	Request    Action = "request"    // ask for a deletion
	Approve    Action = "approve"    // approve or reject someone else's request
	Administer Action = "administer" // manage users and roles, read the policy page
)

var actionRole = map[Action]Role{
	Search:     Viewer,
	ViewAudit:  Viewer,
	Request:    Requester,
	Approve:    Approver,
	Administer: Admin,
}

// Can reports whether role may do action. Unknown actions are refused.
func Can(role Role, action Action) bool {
	min, ok := actionRole[action]
	return ok && role.AtLeast(min)
}

// Check is Can as an error: nil, or ErrForbidden.
func Check(role Role, action Action) error {
	if !Can(role, action) {
		return ErrForbidden
	}
	return nil
}
