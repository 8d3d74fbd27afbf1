// Package flagenv parses a daemon's flags with an environment fallback.
//
// Every flag --some-flag of binary foo can also be set through FOO_SOME_FLAG. A flag given on the
// command line beats the environment, and the environment beats the flag's default, so a compose
// file or a systemd unit can configure a daemon without rewriting its command line.
package flagenv

import (
	"flag"
	"fmt"
	"sort"
	"strings"
)

// EnvName returns the environment variable that backs flag name of binary: "postsvcd", "zk-root"
// → "POSTSVCD_ZK_ROOT".
func EnvName(binary, name string) string {
	r := strings.NewReplacer("-", "_", ".", "_")
	return strings.ToUpper(r.Replace(binary) + "_" + r.Replace(name))
}

// Parse parses args into fs, then fills every flag not set on the command line from its environment
// variable, read through getenv so tests need not touch the process environment.
func Parse(fs *flag.FlagSet, binary string, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		env := EnvName(binary, f.Name)
		if v := getenv(env); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	return err
}

// Secret marks a flag whose value must never be logged; Describe masks it.
type Secret interface{ IsSecret() bool }

// Describe returns every flag's resolved value as slog-friendly key/value pairs, in name order,
// with the values of secret flags masked. secrets lists extra flag names to mask.
func Describe(fs *flag.FlagSet, secrets ...string) []any {
	mask := map[string]bool{}
	for _, s := range secrets {
		mask[s] = true
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	out := make([]any, 0, 2*len(names))
	for _, n := range names {
		f := fs.Lookup(n)
		v := f.Value.String()
		if s, ok := f.Value.(Secret); (ok && s.IsSecret()) || mask[n] {
			if v != "" {
				v = "********"
			}
		}
		out = append(out, n, v)
	}
	return out
}
