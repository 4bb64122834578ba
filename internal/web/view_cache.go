package web

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"

	"github.com/tombstone-console/tombstone/internal/approval"
	"github.com/tombstone-console/tombstone/internal/preview"
	"github.com/tombstone-console/tombstone/web/templates"
)

// Under load the pages that show a preview spend most of their time rendering its tree and summary and,
// on a request's page, decoding the frozen preview. Both depend only on data that never
// changes once made: an exact preview is immutable (a new evaluation is a new preview), and
// a request's frozen preview is written once. So the server keeps the rendered details per
// preview and the decoded frozen preview per request.
const (
	// viewCacheBytes bounds the rendered HTML kept.
	viewCacheBytes = 32 << 20
	// frozenCacheEntries bounds the frozen previews kept.
	frozenCacheEntries = 256
)

// frozenPreview is a request's frozen preview with the digest the request carries.
type frozenPreview struct {
	digest string
	p      *preview.Preview
}

// withCachedDetails shows the details of p (the per-table summary and the tree) in v from
// HTML rendered once for key, which must name everything they show: the preview, and how it is
// shown. On a miss it fills v's details, renders them and keeps the HTML; details that fail to
// render are left to the page, which reports the error as usual.
func (s *Server) withCachedDetails(ctx context.Context, key string, v *templates.PreviewProps, p *preview.Preview) {
	if html, ok := s.views.get(key); ok {
		v.DetailsHTML = templ.Raw(html)
		return
	}
	addDetails(v, p)
	var b strings.Builder
	if err := templates.PreviewDetails(*v).Render(ctx, &b); err != nil {
		return
	}
	html := b.String()
	s.views.put(key, html)
	v.DetailsHTML = templ.Raw(html)
}

// liveDetailsKey names the details of an exact live preview as shown by one URL.
func liveDetailsKey(ref *rootRef, p *preview.Preview, v templates.PreviewProps) string {
	return strings.Join([]string{"live", ref.cacheKey(), p.Digest, strconv.FormatInt(p.At.UnixNano(), 10),
		v.URL, strconv.Itoa(v.LazyBelow)}, "\x00")
}

// frozenDetailsKey names the details of a request's frozen preview.
func frozenDetailsKey(rq *approval.Request) string {
	return "request\x00" + strconv.FormatInt(rq.ID, 10) + "\x00" + rq.Digest
}

// withFrozenPreview fills rq.Preview, from memory when this server has read it before.
func (s *Server) withFrozenPreview(r *http.Request, rq *approval.Request) error {
	if f, ok := s.frozen.get(rq.ID); ok && f.digest == rq.Digest {
		rq.Preview = f.p
		return nil
	}
	p, err := approval.FrozenPreview(r.Context(), s.db.Bun, rq.ID)
	if err != nil {
		return err
	}
	s.frozen.put(rq.ID, frozenPreview{digest: rq.Digest, p: p})
	rq.Preview = p
	return nil
}
