// Package post defines a post as every part of the system stores and serves it, with its one JSON
// form for clients and its one form for the write-back queue.
//
// Post ids are Snowflake ids above 2^53, so JSON carries them twice (a number for the reference's
// clients and a string for JavaScript), and the queue carries them only as strings, since
// gocraft/work decodes job-argument numbers as float64.
package post

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Post is one post.
type Post struct {
	ID        uint64
	UserID    uint64
	Contents  string
	URL       string          // "" when the post has no link
	Scrap     json.RawMessage // the link preview as scrapd returned it; nil when none
	CreatedAt time.Time       // from the id's timestamp, millisecond precision, UTC
}

type wire struct {
	ID        uint64          `json:"post_id"`
	IDStr     string          `json:"post_id_str"`
	UserID    uint64          `json:"user_id"`
	Contents  string          `json:"contents"`
	URL       *string         `json:"url"`
	Scrap     json.RawMessage `json:"scrap"`
	CreatedAt string          `json:"created_at"`
}

// MarshalJSON writes the client form of docs/api.md#postsvcd (AppendJSON).
func (p Post) MarshalJSON() ([]byte, error) {
	if len(p.Scrap) > 0 {
		return json.Marshal(p.wire())
	}
	return p.AppendJSON(nil), nil
}

// wire is p in the struct encoding/json writes the client form from.
func (p Post) wire() wire {
	w := wire{ID: p.ID, IDStr: strconv.FormatUint(p.ID, 10), UserID: p.UserID, Contents: p.Contents,
		Scrap: p.Scrap, CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if p.URL != "" {
		w.URL = &p.URL
	}
	if len(w.Scrap) == 0 {
		w.Scrap = json.RawMessage("{}")
	}
	return w
}

// UnmarshalJSON reads the client form. The id is taken from post_id_str when present, since a
// number past 2^53 may have been rounded on its way through a JavaScript client.
func (p *Post) UnmarshalJSON(b []byte) error {
	var w struct {
		wire
		ID json.Number `json:"post_id"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	idText := w.IDStr
	if idText == "" {
		idText = w.ID.String()
	}
	id, err := strconv.ParseUint(idText, 10, 64)
	if err != nil {
		return fmt.Errorf("post_id %q: %w", idText, err)
	}
	created, err := time.Parse(time.RFC3339Nano, w.CreatedAt)
	if err != nil {
		return fmt.Errorf("created_at %q: %w", w.CreatedAt, err)
	}
	*p = Post{ID: id, UserID: w.UserID, Contents: w.Contents, Scrap: w.Scrap, CreatedAt: created.UTC()}
	if w.URL != nil {
		p.URL = *w.URL
	}
	if string(p.Scrap) == "null" {
		p.Scrap = nil
	}
	return nil
}

// Args returns the post as gocraft/work job arguments: every number as a decimal string.
func (p Post) Args() map[string]any {
	a := map[string]any{
		"post_id":    strconv.FormatUint(p.ID, 10),
		"user_id":    strconv.FormatUint(p.UserID, 10),
		"contents":   p.Contents,
		"url":        p.URL,
		"created_at": p.CreatedAt.UTC().Format(time.RFC3339Nano),
		"scrap":      "",
	}
	if len(p.Scrap) > 0 {
		a["scrap"] = string(p.Scrap)
	}
	return a
}

// FromArgs reads a post back from job arguments written by Args.
func FromArgs(a map[string]any) (Post, error) {
	return fromArgs(func(k string) (string, error) { return argString(a, k) })
}

// FromStringArgs is FromArgs for a decoder that read the arguments as strings, without a map:
// arg returns argument k and whether the job has it.
func FromStringArgs(arg func(k string) (string, bool)) (Post, error) {
	return fromArgs(func(k string) (string, error) {
		if v, ok := arg(k); ok {
			return v, nil
		}
		return "", fmt.Errorf("job argument %q: want a string, got %T", k, nil)
	})
}

// fromArgs reads a post from the arguments arg returns, each a string or an error.
func fromArgs(arg func(k string) (string, error)) (Post, error) {
	p, err := parseArgs(arg)
	if err != nil {
		return Post{}, fmt.Errorf("decoding job: %w", err)
	}
	return p, nil
}

func parseArgs(arg func(k string) (string, error)) (p Post, err error) {
	if p.ID, err = argUint(arg, "post_id"); err != nil {
		return p, err
	}
	if p.UserID, err = argUint(arg, "user_id"); err != nil {
		return p, err
	}
	if p.Contents, err = arg("contents"); err != nil {
		return p, err
	}
	if p.URL, err = arg("url"); err != nil {
		return p, err
	}
	created, err := arg("created_at")
	if err != nil {
		return p, err
	}
	if p.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return p, fmt.Errorf("job argument \"created_at\": %w", err)
	}
	p.CreatedAt = p.CreatedAt.UTC()
	scrap, err := arg("scrap")
	if err != nil {
		return p, err
	}
	if scrap != "" {
		if !json.Valid([]byte(scrap)) {
			return p, errors.New(`job argument "scrap": not JSON`)
		}
		p.Scrap = json.RawMessage(scrap)
	}
	return p, nil
}

// argString returns job argument k, which must be a string.
func argString(a map[string]any, k string) (string, error) {
	v, ok := a[k].(string)
	if !ok {
		return "", fmt.Errorf("job argument %q: want a string, got %T", k, a[k])
	}
	return v, nil
}

// argUint returns job argument k, a decimal string: numbers are refused, since gocraft/work
// decodes them as float64, which rounds ids past 2^53.
func argUint(arg func(k string) (string, error), k string) (uint64, error) {
	s, err := arg(k)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("job argument %q: %w", k, err)
	}
	return n, nil
}
