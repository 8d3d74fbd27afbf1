package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRun(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	gone.Close()
	for _, tc := range []struct {
		name   string
		urls   []string
		wantOK bool
	}{
		{"every URL answers 200", []string{ok.URL, ok.URL + "/readyz"}, true},
		{"one answers 503", []string{ok.URL, down.URL}, false},
		{"one refuses connections", []string{gone.URL}, false},
		{"not a URL", []string{"::"}, false},
		{"no URL", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.urls)
			if (err == nil) != tc.wantOK {
				t.Errorf("run(%q): got %v, want ok=%v", tc.urls, err, tc.wantOK)
			}
		})
	}
}
