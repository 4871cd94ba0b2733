package module

import (
	"github.com/caddy-vipa/caddy-vipa/module/vipaif"
	"go.uber.org/zap"
)

// Linux manages vipa_interface's addresses through netlink and announces
// them with gratuitous ARP and unsolicited neighbour advertisements.
func init() {
	interfaceAddresses = func(name string, logger *zap.Logger) (vipaAddresses, error) {
		m, err := vipaif.New(name)
		if err != nil {
			return nil, err
		}
		logger.Debug("managing VIPA addresses", zap.String("interface", m.Interface()))
		return m, nil
	}
}
