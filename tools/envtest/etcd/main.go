// Command etcd is upstream etcd's main, built from the Go module proxy for the operator tests.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
