package scrap

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/otiai10/opengraph/v2"
)

// TestCompareOtiai10 runs github.com/otiai10/opengraph/v2 the way its users do (Fetch, then ToAbs)
// over the corpus and logs, field by field, where its result differs from the fixture's expected
// preview. It is a report, not a check: our own results are checked by TestCorpus. Run with -v.
func TestCompareOtiai10(t *testing.T) {
	cases := corpusCases(t)
	srv := corpusServer(t, cases)
	perField := map[string]int{}
	differing, failed := 0, 0
	for _, c := range cases {
		want := c.Want(t, srv.URL)
		og, err := opengraph.Fetch(srv.URL+c.Path, opengraph.Intent{HTTPClient: srv.Client()})
		if err == nil {
			err = og.ToAbs()
		}
		if err != nil {
			failed++
			differing++
			t.Logf("%s: otiai10 failed: %v", c.Name, err)
			continue
		}
		diffs := diffPreview(otiai10Preview(og, srv.URL+c.Path), want)
		if len(diffs) == 0 {
			continue
		}
		differing++
		for _, d := range diffs {
			perField[d[:strings.IndexByte(d, ':')]]++
			t.Logf("%s: otiai10 %s", c.Name, shorten(d, 300))
		}
	}
	t.Logf("otiai10 differs from expected on %d/%d fixtures (%s; %d failed outright: fetch or ToAbs error)",
		differing, len(cases), fieldCounts(perField), failed)
}

// otiai10Preview maps otiai10's result onto our Preview, empty strings and zero sizes as absent.
// It has no author field. Its url is og:url only, so the requested URL stands in when that is empty,
// as any caller would do; a relative og:url stays as it returns it.
func otiai10Preview(og *opengraph.OpenGraph, requested string) *Preview {
	if og.URL == "" {
		og.URL = requested
	}
	p := &Preview{
		Title:       nonEmpty(og.Title),
		URL:         nonEmpty(og.URL),
		Type:        nonEmpty(og.Type),
		Description: nonEmpty(og.Description),
		SiteName:    nonEmpty(og.SiteName),
		Locale:      nonEmpty(og.Locale),
		Icon:        nonEmpty(og.Favicon.URL),
		Images:      []Image{},
	}
	for _, im := range og.Image {
		p.Images = append(p.Images, Image{URL: im.URL, Width: nonZero(im.Width), Height: nonZero(im.Height), Alt: nonEmpty(im.Alt)})
	}
	if len(p.Images) > 0 {
		p.Image = &p.Images[0].URL
	}
	return p
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// shorten cuts s to about n bytes for the log.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + fmt.Sprintf("... (%d bytes)", len(s))
}

// fieldCounts renders {"title": 3, "image": 1} as "image 1, title 3".
func fieldCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
