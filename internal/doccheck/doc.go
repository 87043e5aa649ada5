// Package doccheck holds the tests that keep the documentation true: every
// figure docs/ states about the test suite (cases, inputs, versions, fuzz
// targets and seeds) is counted from the suite itself, so it cannot drift.
package doccheck
