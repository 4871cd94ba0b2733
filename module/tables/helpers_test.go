package tables

// Set inserts or updates the row (r.VIPA, r.Port, r.Node). A row with
// Ready <= 0 is deleted instead. Production code replaces a node's rows
// whole (Replace); tests build tables row by row.
func (d *DPT) Set(r Row) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.edit()
	e.set(r)
	e.commit()
}
