//go:build unix && !linux

package lambdaemu

import "syscall"

// sysProcAttr puts the emulator in a process group of its own, so that Close
// can signal the group. Outside Linux there is no parent-death signal: a
// function outlives a test process that is killed.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// proc names one process.
type proc struct {
	pid   int
	start uint64
}

// descendants is not known outside Linux; the emulator's own shutdown on
// SIGTERM is relied on to stop the bootstrap.
func descendants(int) []proc { return nil }

// alive reports whether p still exists.
func (p proc) alive() bool { return syscall.Kill(p.pid, 0) == nil }

// kill sends SIGKILL to p.
func (p proc) kill() { _ = syscall.Kill(p.pid, syscall.SIGKILL) }

// procOf returns the proc for pid.
func procOf(pid int) (proc, bool) { return proc{pid: pid}, syscall.Kill(pid, 0) == nil }
