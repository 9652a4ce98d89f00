// Command hello is a test helper for harness/vm: a Go program built by vm.GoBinary and run in the guest.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("hello from Go in the guest, args %q\n", os.Args[1:])
}
