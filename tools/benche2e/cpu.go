package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat (100 on every Linux we run).
const clockTick = 10 * time.Millisecond

// machineCPU is busy and total time from the first line of /proc/stat.
type machineCPU struct{ busy, total time.Duration }

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("reading /proc/stat: unexpected first line %q", line)
	}
	var m machineCPU
	for i, s := range f[1:] {
		if i >= 8 { // guest and guest_nice are already counted in user and nice
			break
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
		}
		d := time.Duration(n) * clockTick
		m.total += d
		if i != 3 && i != 4 { // idle, iowait
			m.busy += d
		}
	}
	return m, nil
}

// procCPU returns the user+system time of pid and its reaped children so far (0 for a pid that
// is gone).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// After the name: state(3) ... utime(14) stime(15) cutime(16) cstime(17); f[0] is field 3.
	if len(f) < 15 {
		return 0
	}
	var sum int64
	for _, k := range []int{11, 12, 13, 14} {
		n, _ := strconv.ParseInt(f[k], 10, 64)
		sum += n
	}
	return time.Duration(sum) * clockTick
}

// cpuSample is the CPU counters of the machine and of every watched process at one instant.
type cpuSample struct {
	at      time.Time
	machine machineCPU
	procs   map[string]time.Duration // group name → summed CPU
}

// sampleCPU reads the machine and the processes of groups (group name → pids).
func sampleCPU(groups map[string][]int) (cpuSample, error) {
	m, err := readMachineCPU()
	if err != nil {
		return cpuSample{}, err
	}
	s := cpuSample{at: time.Now(), machine: m, procs: map[string]time.Duration{}}
	for g, pids := range groups {
		for _, pid := range pids {
			s.procs[g] += procCPU(pid)
		}
	}
	return s, nil
}

// autogroupPath is the scheduler knob a benchmark run turns off: with autogroup each session
// gets an equal share, which would favour whichever process tree runs alone in its session.
const autogroupPath = "/proc/sys/kernel/sched_autogroup_enabled"

// disableAutogroup sets sched_autogroup_enabled to 0 and returns the function restoring it.
func disableAutogroup() (restore func(), err error) {
	old, err := os.ReadFile(autogroupPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", autogroupPath, err)
	}
	if err := os.WriteFile(autogroupPath, []byte("0\n"), 0o644); err != nil {
		return nil, fmt.Errorf("setting %s to 0 (run as root): %w", autogroupPath, err)
	}
	return func() { _ = os.WriteFile(autogroupPath, old, 0o644) }, nil
}
