// netbird-server: NetBird's combined server (management, signal, relay, STUN and the built-in identity provider on
// one port), as NetBird's own combined/main.go builds it.
package main

import (
	log "github.com/sirupsen/logrus"

	"github.com/netbirdio/netbird/combined/cmd"
)

func main() {
	if err := cmd.Execute(); err != nil {
		log.Fatalf("failed to execute command: %v", err)
	}
}
