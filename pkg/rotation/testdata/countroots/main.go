// Command countroots prints how many distinct trusted roots crypto/x509
// loads from the system under the current environment.
package main

import (
	"crypto/x509"
	"fmt"
	"os"
)

func main() {
	pool, err := x509.SystemCertPool()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	//lint:ignore SA1019 Subjects is deprecated for system pools on some platforms only; on Linux it lists the loaded roots.
	fmt.Println(len(pool.Subjects()))
}
