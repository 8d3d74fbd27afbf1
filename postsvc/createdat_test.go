package postsvc_test

import (
	"testing"
	"time"

	"github.com/the-red/zkpost/guid"
	"github.com/the-red/zkpost/postsvc"
)

// TestCreatedAtReadsGuidsClock ties postsvc's created_at to the IDs guid issues: an ID made by
// guid's generator at a given clock reading decodes, in postsvc, to that millisecond. A change of
// guid's epoch or layout that postsvc did not follow fails here.
func TestCreatedAtReadsGuidsClock(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2021, 6, 1, 0, 0, 0, 1e6, time.UTC),
		time.Date(2026, 11, 22, 18, 51, 35, 610e6, time.UTC),
		time.Date(2089, 12, 31, 23, 59, 59, 999e6, time.UTC),
	} {
		t.Run(at.Format(time.RFC3339Nano), func(t *testing.T) {
			g, err := guid.NewGenerator(31, 17, guid.Options{Now: func() time.Time { return at }})
			if err != nil {
				t.Fatal(err)
			}
			id, err := g.Next()
			if err != nil {
				t.Fatal(err)
			}
			if got := postsvc.CreatedAt(id); !got.Equal(at) || got.Location() != time.UTC {
				t.Fatalf("CreatedAt(%d): got %v, want %v in UTC", id, got, at)
			}
		})
	}
}
