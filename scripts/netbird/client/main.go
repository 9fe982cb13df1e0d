// netbird: NetBird's CLI client (`netbird up`, `netbird status`), as NetBird's own client/main.go builds it.
package main

import (
	"os"

	"github.com/netbirdio/netbird/client/cmd"
)

func main() {
	if err := cmd.Execute(); err != nil {
		os.Exit(1)
	}
}
