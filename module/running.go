package module

import (
	"slices"
	"sync"
)

// running lists the started vipadynamic apps, oldest first. During a reload
// the new config starts before the old one is cleaned up, and a failed
// reload cleans up the new one instead: the admin API follows the newest
// app still running either way.
var running struct {
	mu   sync.Mutex
	apps []*App
}

func markRunning(a *App) {
	running.mu.Lock()
	defer running.mu.Unlock()
	running.apps = append(running.apps, a)
}

func markStopped(a *App) {
	running.mu.Lock()
	defer running.mu.Unlock()
	running.apps = slices.DeleteFunc(running.apps, func(x *App) bool { return x == a })
}

// currentApp is the newest running app, or nil.
func currentApp() *App {
	running.mu.Lock()
	defer running.mu.Unlock()
	if n := len(running.apps); n > 0 {
		return running.apps[n-1]
	}
	return nil
}
