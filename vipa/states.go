package vipa

import "fmt"

// RowState is the state of a DPT row.
type RowState string

// Row states.
const (
	StateActive   RowState = "active"   // takes new connections
	StateQuiesced RowState = "quiesced" // keeps its connections, takes no new ones
	StateStandby  RowState = "standby"  // a hotstandby backup not in use
)

// ParseRowState checks a row state name.
func ParseRowState(s string) (RowState, error) {
	switch st := RowState(s); st {
	case StateActive, StateQuiesced, StateStandby:
		return st, nil
	}
	return "", fmt.Errorf("unknown row state %q: want active, quiesced or standby", s)
}

// Health of a DPT row, from its recent dial outcomes.
type Health string

// Health values.
const (
	Healthy   Health = "healthy"
	Unhealthy Health = "unhealthy"
)

// ParseHealth checks a health name.
func ParseHealth(s string) (Health, error) {
	switch h := Health(s); h {
	case Healthy, Unhealthy:
		return h, nil
	}
	return "", fmt.Errorf("unknown health %q: want healthy or unhealthy", s)
}

// VIPADynStatus is what a node is for a VIPA it knows (GET /vipa/vipadyn).
type VIPADynStatus string

// VIPADYN statuses.
const (
	StatusActive    VIPADynStatus = "active"    // this node routes the VIPA
	StatusBackup    VIPADynStatus = "backup"    // a backup routing node, ready to take over
	StatusMoving    VIPADynStatus = "moving"    // handing the VIPA to another node
	StatusQuiescing VIPADynStatus = "quiescing" // waiting for connections to end before a move
	StatusNone      VIPADynStatus = "none"      // neither owner nor backup
)

// ParseVIPADynStatus checks a status name.
func ParseVIPADynStatus(s string) (VIPADynStatus, error) {
	switch st := VIPADynStatus(s); st {
	case StatusActive, StatusBackup, StatusMoving, StatusQuiescing, StatusNone:
		return st, nil
	}
	return "", fmt.Errorf("unknown vipadyn status %q: want active, backup, moving, quiescing or none", s)
}

// Takeback policies of a backup routing node giving a VIPA back.
const (
	TakebackWhenIdle  = "when_idle"
	TakebackImmediate = "immediate"
)

// ParseTakeback checks a takeback policy; "" is when_idle.
func ParseTakeback(s string) (string, error) {
	switch s {
	case "":
		return TakebackWhenIdle, nil
	case TakebackWhenIdle, TakebackImmediate:
		return s, nil
	}
	return "", fmt.Errorf("takeback %q: want when_idle or immediate", s)
}
