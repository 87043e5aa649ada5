// Package buildcheck holds tests of the build graph: what the production
// binaries link and which layers may import which.
package buildcheck
