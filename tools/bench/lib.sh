# lib.sh: what the wrk scripts of tools/bench share (sourced, not run). docs/benchmarks.md says
# how a comparison is run: interleaved pairs, the median of the per-pair ratios, machine CPU per
# operation from /proc/stat, and the scheduler's autogroup off for the run.

# bench_autogroup_off turns sched_autogroup_enabled off for the rest of the script: with it on,
# processes started from different sessions get unequal CPU shares, which skews a comparison by up
# to ~35 % on a 2-core machine. bench_autogroup_restore puts the old value back; call it from the
# script's EXIT trap. Without root the setting is left as it is, with a warning.
BENCH_AUTOGROUP=/proc/sys/kernel/sched_autogroup_enabled
BENCH_AUTOGROUP_OLD=
bench_autogroup_off() {
	[[ -f $BENCH_AUTOGROUP ]] || return 0
	BENCH_AUTOGROUP_OLD=$(<"$BENCH_AUTOGROUP")
	if ! echo 0 >"$BENCH_AUTOGROUP" 2>/dev/null; then
		echo "warning: cannot turn sched_autogroup off (not root?): CPU shares may be unequal" >&2
		BENCH_AUTOGROUP_OLD=
	fi
}
bench_autogroup_restore() {
	if [[ -n $BENCH_AUTOGROUP_OLD ]]; then
		echo "$BENCH_AUTOGROUP_OLD" >"$BENCH_AUTOGROUP" 2>/dev/null || true
	fi
}

# bench_busy_ticks prints the machine's busy CPU time so far, in clock ticks (USER_HZ, 100 per
# second): user, nice, system, irq and softirq from the first line of /proc/stat. Not idle or
# iowait, and not steal: time the hypervisor ran something else while a CPU of ours wanted to run,
# which grows with the host's load rather than ours.
bench_busy_ticks() {
	awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# bench_cpu_us_per_op busy0 busy1 ops: machine CPU µs per operation between two readings.
bench_cpu_us_per_op() {
	awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 10000 / n; else print "nan" }'
}

# bench_wrk label wrk-args...: runs wrk with --latency and the given arguments, and prints
# "label req/s p99 cpu_us_per_request" on one line (p99 as wrk prints it). Non-2xx answers and
# socket errors are reported on stderr.
bench_wrk() {
	local label=$1 out b0 b1 rps p99 n
	shift
	b0=$(bench_busy_ticks)
	out=$(wrk --latency "$@")
	b1=$(bench_busy_ticks)
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
		echo "$label: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' ')" >&2
	fi
	echo "$label $rps $p99 $(bench_cpu_us_per_op "$b0" "$b1" "$n")"
}

# bench_median prints the median of the numbers on stdin, one per line.
bench_median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# bench_col_median file c: the median of column c of file (one pair per line).
bench_col_median() {
	awk -v c="$2" '{ print $c }' "$1" | bench_median
}

# bench_ratio_median file a b: the median over the lines of file of column a / column b (the
# median per-pair ratio).
bench_ratio_median() {
	awk -v a="$2" -v b="$3" '{ print $a / $b }' "$1" | bench_median
}
