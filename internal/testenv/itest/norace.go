//go:build !race

package itest

// raceEnabled tells BuildBinary to build daemons with -race, like this test binary.
const raceEnabled = false
