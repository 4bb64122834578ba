package web

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/tombstone-console/tombstone/web/templates"
)

// assets serves the embedded static files under names that carry a hash of their content
// (app.3f2a9c1e.css), so they can be cached for a year: a changed file gets a new name.
type assets struct {
	files map[string]asset // by hashed name
	urls  templates.Assets
}

type asset struct {
	body  []byte
	ctype string
}

func newAssets(fsys fs.FS) (*assets, error) {
	a := &assets{files: map[string]asset{}}
	url := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".go") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ext := path.Ext(p)
		// htmx.min.js → htmx.min.<hash>.js
		hashed := strings.TrimSuffix(p, ext) + "." + hex.EncodeToString(sum[:])[:12] + ext
		ctype := mime.TypeByExtension(ext)
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		a.files[hashed] = asset{body: b, ctype: ctype}
		url[p] = "/static/" + hashed
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.urls = templates.Assets{CSS: url["app.css"], HTMX: url["htmx.min.js"], Icon: url["icon.svg"]}
	return a, nil
}

func (a *assets) serve(w http.ResponseWriter, r *http.Request) {
	f, ok := a.files[r.PathValue("file")]
	if !ok {
		w.Header().Set("Cache-Control", "no-store")
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.ctype)
	w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.body))
}
