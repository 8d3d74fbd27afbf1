package main

import (
	"io"
	"net/http"
	"testing"
	"time"
)

var httpClient = &http.Client{Timeout: 2 * time.Second}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	code, _ := httpGet(t, url)
	return code
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
