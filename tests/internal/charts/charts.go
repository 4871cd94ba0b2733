// Package charts holds what the measurement commands' SVG charts share:
// where they go and how one is written.
package charts

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// DefaultDir is where `go run ./tests/...` from the checkout's root leaves
// its charts, beside the other ignored work files.
const DefaultDir = "tests/.work/charts"

// Save writes p, width by height, as the SVG file name in dir (made if
// need be) and names the file on out.
func Save(p *plot.Plot, width, height vg.Length, dir, name string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	if err := p.Save(width, height, path); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	fmt.Fprintf(out, "chart: %s\n", path)
	return nil
}
