package module

import (
	"net/http/httptest"
	"testing"
)

func TestParseCRTFilter(t *testing.T) {
	for query, ok := range map[string]bool{
		"":                                 true,
		"vipa=127.0.0.100&port=80&limit=1": true,
		"node=caddy-b":                     true,
		"vipa=%zz":                         false, // not even a query: refused, not ignored
		"port=80&vipa=%zz":                 false,
		"vipa=nowhere":                     false,
		"port=65536":                       false,
		"limit=-1":                         false,
	} {
		f, err := parseCRTFilter(httptest.NewRequest("GET", "/vipa/crt?"+query, nil))
		if (err == nil) != ok {
			t.Errorf("%q: %+v, %v", query, f, err)
		}
	}
}
