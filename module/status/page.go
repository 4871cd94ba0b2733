package status

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"strings"
)

//go:embed page
var pageFiles embed.FS

// page is the status page: one HTML document with its style and script
// inline, allowed by their hashes and nothing else.
var page = buildPage()

type pageDoc struct {
	html []byte
	csp  string
}

func buildPage() pageDoc {
	read := func(name string) string {
		b, err := pageFiles.ReadFile("page/" + name)
		if err != nil {
			panic(err) // embedded at build time
		}
		return string(b)
	}
	style, script := read("page.css"), read("page.js")
	html := strings.NewReplacer("{{style}}", style, "{{script}}", script).Replace(read("index.html"))
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'" +
		"; style-src " + hash(style) + "; script-src " + hash(script)
	return pageDoc{html: []byte(html), csp: csp}
}
