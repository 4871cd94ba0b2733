//go:build !race

package serfsync

const raceEnabled = false
