package vipa

import "fmt"

// Listener modes: how a node finds its application listeners.
const (
	ListenersAuto  = "auto"  // the kernel's socket table; probes where there is none
	ListenersProbe = "probe" // connections to the advertise address
	ListenersOff   = "off"   // report nothing
)

// ParseListeners checks a listener mode; "" is auto.
func ParseListeners(mode string) (string, error) {
	switch mode {
	case "":
		return ListenersAuto, nil
	case ListenersAuto, ListenersProbe, ListenersOff:
		return mode, nil
	}
	return "", fmt.Errorf("listeners %q: want auto, probe or off", mode)
}
