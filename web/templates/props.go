// Package templates holds the console's templ components. Components take small props
// structs defined here, built by internal/web from domain values; this package imports no
// domain package and does no I/O.
//
// Every page is a function of (Page, props) that wraps its content in Layout. Key elements
// carry data-testid attributes, which tests and browser checks select on.
package templates

import (
	"time"
)

// Page is what the layout needs on every page.
type Page struct {
	Title string
	// Nav is the active top-level section: "search", "requests", "audit" or "admin".
	Nav string
	// User is the signed-in user, nil on pages for anonymous visitors.
	User *Viewer
	// Awaiting is the number of requests awaiting the user's decision (the Requests badge).
	Awaiting int
	// Query fills the top bar's search box.
	Query   string
	Flashes []Flash
	Assets  Assets
	// Now is the time the page is rendered at, for relative times.
	Now time.Time
}

// Viewer is the signed-in user as the layout shows them.
type Viewer struct {
	Name  string
	Label string // display name, or the name
	Role  string
	Admin bool
}

// Flash is a one-time message shown at the top of the next page.
type Flash struct {
	Kind string // "info", "success" or "error"
	Text string
}

// Assets are the cache-busted URLs of the static files.
type Assets struct {
	CSS  string
	HTMX string
	Icon string
}

// Badge is a small label next to a result or row. Class picks its colour, e.g. "action-soft"
// or "badge-muted"; the text always says what the colour means.
type Badge struct {
	Text  string
	Class string
}

// SignIn is the sign-in form.
type SignIn struct {
	Name  string
	Next  string
	Error string
	// Notice is shown above the form, e.g. when a signed-in user confirms who they are.
	Notice string
	// SSO shows the "Sign in with SSO" button.
	SSO bool
}

// Error is an error page.
type Error struct {
	Status    int
	Title     string
	Message   string
	RequestID string
	// Back is a link offered to get on, e.g. "/" or "/signin".
	Back string
}

// Users is the admin users page.
type Users struct {
	Users []UserRow
	Roles []string
	Form  UserForm
	// Created is set right after a user was added, to show a generated password once.
	Created *CreatedUser
}

// UserRow is one user in the admin list.
type UserRow struct {
	ID           int64
	Name         string
	DisplayName  string
	Role         string
	SSO          bool
	Password     bool
	Disabled     bool
	LastSignedIn time.Time
	Created      time.Time
	// Self is the admin looking at the page; they cannot demote or disable themselves.
	Self bool
}

// UserForm is the "add user" form with its values and field errors.
type UserForm struct {
	Name        string
	DisplayName string
	Role        string
	OIDCSubject string
	Errors      map[string]string
}

// CreatedUser reports a new user and, when one was generated, their initial password.
type CreatedUser struct {
	Name     string
	Password string
}
