// Command agentlist prints the keys of the ssh-agent at $SSH_AUTH_SOCK, one
// "<SHA256 fingerprint> <comment>" per line: the ssh input's test runs it in a
// RUN --mount=type=ssh step, where the image has no ssh client.
package main

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func main() {
	conn, err := net.Dial("unix", os.Getenv("SSH_AUTH_SOCK"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentlist:", err)
		os.Exit(1)
	}
	keys, err := agent.NewClient(conn).List()
	if err != nil {
		fmt.Fprintln(os.Stderr, "agentlist:", err)
		os.Exit(1)
	}
	for _, k := range keys {
		fmt.Println(ssh.FingerprintSHA256(k), k.Comment)
	}
}
