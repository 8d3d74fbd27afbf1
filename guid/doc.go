// Package guid issues Snowflake IDs: 64-bit integers, unique across every guidd of a deployment
// and strictly increasing under one lease of a worker id, with the reference's layout so its users
// decode them the same way (the reference: docs/glossary.md#the-reference; the id API:
// docs/api.md#guidd).
//
// # Layout
//
//	bit 63      unused (always 0, so an ID is a positive int64)
//	bits 62–22  41 bits: milliseconds since the epoch 2021-06-01T00:00:00Z (Epoch), good until 2090
//	bits 21–17  5 bits: datacenter (0–31), from the --dc flag
//	bits 16–12  5 bits: worker (0–31), leased in ZooKeeper, never configured
//	bits 11–0   12 bits: sequence within the millisecond (0–4095)
//
// Fields are extracted with masks (TimestampMask, DatacenterMask, WorkerMask, SequenceMask), not
// bit counts: the reference masked with the count and decoded garbage.
//
// # Sequence overflow
//
// One worker issues at most 4,096 IDs per millisecond (4,096,000 per second). The sequence runs
// on within a millisecond and never resets inside it (the reference reset it: duplicates under
// load); when it is spent, the generator waits for the next millisecond. An ID is never repeated.
//
// # Clock steps
//
// A Generator remembers the millisecond of its last ID. If the clock reads earlier than that by at
// most MaxStepBack (default 5 ms), the generator waits until it has caught up; by more, it fails
// with ErrClockBackwards (503 clock_backwards at the HTTP edge) until time has caught up by itself.
//
// # Worker leases and stored clocks (ZooKeeper)
//
// A server claims the lowest free ephemeral node R/guid/workers/<dc>/<n> and issues IDs only while
// it holds that lease: while connected on the session that owns it, and only for sessionTimeout/2
// after the start of the last round trip that confirmed the node is still owned by that session.
// The confirmation matters after a long pause (SIGSTOP, a VM freeze): the ZooKeeper client does
// not yet know its session expired, and another server may own the id by now. Go's monotonic clock
// runs through such a pause, so the stale confirmation stops issuance at once.
//
// R/guid/clock/<dc>-<worker> (persistent, decimal text) holds Unix milliseconds that bound every
// timestamp issued under that worker id: the holder writes now + 2×refresh interval every refresh
// interval and issues only timestamps strictly below the value it last wrote, so a crash (which
// writes nothing) can never leave IDs issued at or past the stored value. A server that leases the
// id refuses to issue (unready, 503 clock_behind) while its clock reads earlier than the stored
// value, and writes its own bound, with a version check, before issuing. So the IDs of successive
// holders of one worker id are ordered by time and cannot collide, even across machines whose
// clocks disagree. A clean shutdown stores its last issued millisecond + 1 instead, so a restarted
// server waits for nothing.
package guid
