package web

import "testing"

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"/", "/"},
		{"/admin/users", "/admin/users"},
		{"/?kind=tenant&q=acme", "/?kind=tenant&q=acme"},
		{"/kinds/tenant/42#tree", "/kinds/tenant/42#tree"},
		{"/requests?state=pending&page=2", "/requests?state=pending&page=2"},
		{"/search?q=%C3%A9t%C3%A9", "/search?q=%C3%A9t%C3%A9"},
		{"", "/"},
		{"admin", "/"},
		{"./admin", "/"},
		{"//evil.example", "/"},
		{"//evil.example/x", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"\\/evil.example", "/"},
		{"/x\\y", "/"},
		{"https://evil.example/", "/"},
		{"http:/evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"JAVASCRIPT:alert(1)", "/"},
		{"data:text/html,<script>", "/"},
		{"/%2F%2Fevil.example", "/"},
		{"/%2fevil", "/"},
		{"/%5Cevil.example", "/"},
		{"/a%00b", "/"},
		{"/a%0d%0aSet-Cookie:x", "/"},
		{"/a\r\nLocation: //evil", "/"},
		{"/a\x00", "/"},
		{"/a\tb", "/"},
		{"/a\x7f", "/"},
		{"/a\u2028b", "/"},
		{" /admin", "/"},
		{"\t/admin", "/"},
		{"/" + string(make([]byte, 3000)), "/"},
	} {
		if got := SafeNext(c.in); got != c.want {
			t.Errorf("SafeNext(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
