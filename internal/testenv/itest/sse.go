package itest

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Event is one server-sent event as a client sees it.
type Event struct {
	ID, Name, Data string
}

// SSE is an open text/event-stream response, parsed as the HTML standard's EventSource does
// (fields id, event, data; comment lines counted, not delivered).
type SSE struct {
	Status   int
	Header   http.Header
	Body     string // the body, when the server did not answer 200
	events   chan Event
	comments chan struct{}
	cancel   context.CancelFunc
}

// OpenSSE requests url with the given headers and, on 200, reads events in the background until
// Close (registered as a cleanup). A non-200 answer is returned with its body for the test to
// check.
func OpenSSE(tb testing.TB, url string, header http.Header) *SSE {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		tb.Fatalf("stream request: %v", err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", url, err)
	}
	s := &SSE{Status: resp.StatusCode, Header: resp.Header, events: make(chan Event, 4096),
		comments: make(chan struct{}, 4096), cancel: cancel}
	tb.Cleanup(s.Close)
	if resp.StatusCode != http.StatusOK {
		b := new(strings.Builder)
		_, _ = bufio.NewReader(resp.Body).WriteTo(b)
		resp.Body.Close()
		s.Body = b.String()
		return s
	}
	go s.read(resp)
	return s
}

func (s *SSE) read(resp *http.Response) {
	defer resp.Body.Close()
	defer close(s.events)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var ev Event
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil {
				ev.Data = strings.Join(data, "\n")
				s.events <- ev
			}
			ev, data = Event{}, nil
		case strings.HasPrefix(line, ":"):
			select {
			case s.comments <- struct{}{}:
			default:
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Name = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

// Next returns the next event, or false when none came within timeout or the stream ended.
func (s *SSE) Next(timeout time.Duration) (Event, bool) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-t.C:
		return Event{}, false
	}
}

// Comment waits for a comment line (a heartbeat) for up to timeout.
func (s *SSE) Comment(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.comments:
		return true
	case <-t.C:
		return false
	}
}

// Collect reads events until want returns true for the ids seen so far, or timeout.
func (s *SSE) Collect(timeout time.Duration, want func(ids []string) bool) ([]Event, error) {
	deadline := time.Now().Add(timeout)
	var got []Event
	ids := []string{}
	for !want(ids) {
		left := time.Until(deadline)
		if left <= 0 {
			return got, fmt.Errorf("timed out after %v with %d events", timeout, len(got))
		}
		ev, ok := s.Next(left)
		if !ok {
			return got, fmt.Errorf("stream ended or timed out with %d events", len(got))
		}
		got = append(got, ev)
		ids = append(ids, ev.ID)
	}
	return got, nil
}

// Close ends the request.
func (s *SSE) Close() { s.cancel() }
