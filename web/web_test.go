package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestPlaygroundServesThePage(t *testing.T) {
	rec := httptest.NewRecorder()
	Playground().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d", rec.Code)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("Content-Type %q", ct)
	}
	body := rec.Body.String()
	for _, want := range []string{"<title>Ferry playground</title>", `id="transport"`, "/v1/tickets", "forceFallback"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, `src="app.js"`) {
		t.Error("the page still loads app.js: the bundle must be inlined (scripts/build-web.sh)")
	}
}
