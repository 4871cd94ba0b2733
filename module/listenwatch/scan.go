package listenwatch

// Scan reads the kernel's table of listening TCP sockets once. On Linux it
// asks NETLINK_SOCK_DIAG and falls back to /proc/net/tcp{,6}; other systems
// get an error wrapping errors.ErrUnsupported. A Watcher reuses its socket
// and buffers across scans; Scan opens and closes its own.
func Scan() (Snapshot, error) {
	sc, err := newScanner()
	if err != nil {
		return nil, err
	}
	defer sc.close()
	s := make(Snapshot)
	if err := sc.scan(s); err != nil {
		return nil, err
	}
	return s, nil
}
