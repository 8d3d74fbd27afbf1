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

// machineCPU is the first line of /proc/stat: busy is time the CPUs ran anything (user, nice,
// system, irq, softirq), total adds idle and iowait, and steal is time the hypervisor ran
// something else while a CPU of ours wanted to run. Steal is in neither: it is not work done
// here, and on this shared VM it grows with the host's load, not with ours.
type machineCPU struct{ busy, total, steal time.Duration }

func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachineCPU(line)
}

// The fields of /proc/stat's cpu line, after its name.
const (
	statIdle   = 3
	statIOWait = 4
	statSteal  = 7
	statFields = 8 // guest and guest_nice follow, already counted in user and nice
)

func parseMachineCPU(line string) (machineCPU, error) {
	f := strings.Fields(line)
	if len(f) < 1+statFields || f[0] != "cpu" {
		return machineCPU{}, fmt.Errorf("reading /proc/stat: unexpected first line %q", line)
	}
	var m machineCPU
	for i, s := range f[1 : 1+statFields] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return machineCPU{}, fmt.Errorf("reading /proc/stat: %w", err)
		}
		d := time.Duration(n) * clockTick
		switch i {
		case statSteal:
			m.steal += d
		case statIdle, statIOWait:
			m.total += d
		default:
			m.busy += d
			m.total += d
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
