//go:build race

package serfsync

const raceEnabled = true
