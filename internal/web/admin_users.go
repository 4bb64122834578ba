package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tombstone-console/tombstone/internal/auth"
	"github.com/tombstone-console/tombstone/web/templates"
)

// Admin pages for users. Changes to users are where audit events will be recorded: each
// call into auth takes a bun.IDB so it can run in one transaction with the audit insert.

func (s *Server) adminUsers(w http.ResponseWriter, r *http.Request) error {
	return s.renderUsers(w, r, http.StatusOK, templates.UserForm{Role: string(auth.Viewer)}, nil)
}

func (s *Server) renderUsers(w http.ResponseWriter, r *http.Request, status int, form templates.UserForm, created *templates.CreatedUser) error {
	users, err := auth.ListUsers(r.Context(), s.db.Bun)
	if err != nil {
		return err
	}
	me := currentUser(r)
	props := templates.Users{Form: form, Created: created}
	for _, role := range auth.Roles() {
		props.Roles = append(props.Roles, string(role))
	}
	for _, u := range users {
		props.Users = append(props.Users, templates.UserRow{
			ID: u.ID, Name: u.Name, DisplayName: u.DisplayName, Role: string(u.Role),
			SSO: u.OIDCSubject.Valid, Password: u.HasPassword(), Disabled: u.Disabled(),
			LastSignedIn: u.LastSignedInAt.Time, Created: u.CreatedAt, Self: u.ID == me.ID,
		})
	}
	return s.render(w, r, status, templates.UsersPage(s.pageFor(w, r, "Users", "admin"), props))
}

// adminUserAdd adds a user with a generated password, shown once on the page that answers
// the POST (it is never put in a cookie or a URL). Invalid input re-renders the form (422).
func (s *Server) adminUserAdd(w http.ResponseWriter, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return badRequest("The form could not be read.")
	}
	form := templates.UserForm{
		Name:        r.PostForm.Get("name"),
		DisplayName: r.PostForm.Get("display_name"),
		Role:        r.PostForm.Get("role"),
		OIDCSubject: r.PostForm.Get("oidc_subject"),
	}
	role, err := auth.ParseRole(form.Role)
	if err != nil {
		form.Errors = map[string]string{"role": "Choose one of the roles."}
		return s.renderUsers(w, r, http.StatusUnprocessableEntity, form, nil)
	}
	if errs := userTextErrors(form); len(errs) > 0 {
		form.Errors = errs
		return s.renderUsers(w, r, http.StatusUnprocessableEntity, form, nil)
	}
	password := auth.GeneratePassword()
	u, err := auth.CreateUser(r.Context(), s.db.Bun, auth.NewUser{
		Name: form.Name, DisplayName: form.DisplayName, Role: role, Password: password, OIDCSubject: form.OIDCSubject,
	})
	var ve *auth.ValidationError
	var ce *auth.ConflictError
	switch {
	case errors.As(err, &ve):
		form.Errors = map[string]string{ve.Field: capitalize(ve.Message) + "."}
		return s.renderUsers(w, r, http.StatusUnprocessableEntity, form, nil)
	case errors.As(err, &ce) && ce.Field != "":
		form.Errors = map[string]string{ce.Field: capitalize(ce.Message) + "."}
		return s.renderUsers(w, r, http.StatusConflict, form, nil)
	case err != nil:
		return err
	}
	s.logger(r.Context()).Info("user added", "by", currentUser(r).Name, "name", u.Name, "role", u.Role)
	return s.renderUsers(w, r, http.StatusOK, templates.UserForm{Role: string(auth.Viewer)}, &templates.CreatedUser{Name: u.Name, Password: password})
}

// adminUserRole changes a user's role. An admin cannot change their own role here, so that a
// slip cannot lock them out; the last admin is protected by auth.SetRole itself.
func (s *Server) adminUserRole(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if id == currentUser(r).ID {
		return conflict("You cannot change your own role. Ask another admin.")
	}
	role, err := auth.ParseRole(r.PostFormValue("role"))
	if err != nil {
		return err
	}
	u, err := auth.SetRole(r.Context(), s.db.Bun, id, role)
	if err != nil {
		return err
	}
	s.logger(r.Context()).Info("role changed", "by", currentUser(r).Name, "name", u.Name, "role", u.Role)
	s.flash(w, r, "success", u.Name+" is now "+string(u.Role)+".")
	return seeOther(w, r, "/admin/users")
}

// adminUserDisable disables a user and ends their sessions.
func (s *Server) adminUserDisable(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	if id == currentUser(r).ID {
		return conflict("You cannot disable yourself. Ask another admin.")
	}
	u, err := auth.Disable(r.Context(), s.db.Bun, id)
	if err != nil {
		return err
	}
	s.logger(r.Context()).Info("user disabled", "by", currentUser(r).Name, "name", u.Name)
	s.flash(w, r, "success", u.Name+" is disabled and signed out everywhere.")
	return seeOther(w, r, "/admin/users")
}

// maxUserText bounds the display name and SSO subject, which are stored and shown as given.
const maxUserText = 255

// userTextErrors checks the free-text fields of the add-user form: valid UTF-8, no control
// characters, at most maxUserText bytes.
func userTextErrors(f templates.UserForm) map[string]string {
	errs := map[string]string{}
	for field, v := range map[string]string{"display_name": f.DisplayName, "oidc_subject": f.OIDCSubject} {
		if len(v) > maxUserText || !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
			errs[field] = fmt.Sprintf("Use at most %d bytes of printable text.", maxUserText)
		}
	}
	return errs
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, notFound("There is no such user.")
	}
	return id, nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	if c := s[0]; c >= 'a' && c <= 'z' {
		return string(c-'a'+'A') + s[1:]
	}
	return s
}
