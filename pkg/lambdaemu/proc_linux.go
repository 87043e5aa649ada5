//go:build linux

package lambdaemu

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// sysProcAttr puts the emulator in a process group of its own, so that Close
// can signal the group, and asks the kernel to SIGKILL it if the thread that
// started it (and so, in practice, this process) dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// proc names one process for as long as it lives: a PID can be reused, its
// start time (in clock ticks since boot) tells the two apart.
type proc struct {
	pid   int
	start uint64
}

// stat reads a process's parent PID, state and start time from
// /proc/<pid>/stat.
func stat(pid int) (ppid int, state byte, start uint64, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name is in parentheses and may hold spaces or ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, 0, 0, false
	}
	f := bytes.Fields(b[i+2:])
	// f[0] is field 3 (state); field 4 is ppid, field 22 is starttime.
	if len(f) < 20 {
		return 0, 0, 0, false
	}
	ppid, err = strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, 0, 0, false
	}
	start, err = strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	return ppid, f[0][0], start, true
}

// descendants lists every live process below pid (children, their children,
// ...). The emulator starts the function's bootstrap in a process group of its
// own, so killing the emulator's group alone would leave it behind.
func descendants(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := make(map[int][]proc)
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, _, start, ok := stat(p)
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], proc{pid: p, start: start})
	}
	var out []proc
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// alive reports whether p still runs: it exists, is the same process (same
// start time) and is not a zombie waiting to be reaped.
func (p proc) alive() bool {
	_, state, start, ok := stat(p.pid)
	return ok && start == p.start && state != 'Z' && state != 'X'
}

// kill sends SIGKILL to p's process group and to p itself, if p is still
// the process it was.
func (p proc) kill() {
	if !p.alive() {
		return
	}
	if pgid, err := syscall.Getpgid(p.pid); err == nil && pgid == p.pid {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
}

// procOf returns the proc for a live pid.
func procOf(pid int) (proc, bool) {
	_, _, start, ok := stat(pid)
	return proc{pid: pid, start: start}, ok
}
