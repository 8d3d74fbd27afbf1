package main

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
)

// basicAuth is workwebui's opt-in authentication (docs/api.md): with a user and a password
// configured (--user and --password, or WORKWEBUI_USER and WORKWEBUI_PASSWORD), every request
// but the probes (/healthz, /readyz, /metrics) needs them as HTTP basic credentials. gocraft/work's
// UI has none of its own, and it lets anyone who reaches it delete and retry jobs.
type basicAuth struct {
	user, password [sha256.Size]byte
	on             bool
}

// newBasicAuth returns the check for user and password: off when both are empty, an error when
// only one is given.
func newBasicAuth(user, password string) (basicAuth, error) {
	switch {
	case user == "" && password == "":
		return basicAuth{}, nil
	case user == "" || password == "":
		return basicAuth{}, errors.New("authentication needs both --user and --password (WORKWEBUI_USER, WORKWEBUI_PASSWORD)")
	}
	return basicAuth{user: sha256.Sum256([]byte(user)), password: sha256.Sum256([]byte(password)), on: true}, nil
}

// allows reports whether r may pass. The credentials are compared as SHA-256 digests in constant
// time, so neither their contents nor their lengths show in the timing.
func (a basicAuth) allows(r *http.Request) bool {
	if !a.on {
		return true
	}
	user, password, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u, p := sha256.Sum256([]byte(user)), sha256.Sum256([]byte(password))
	userOK := subtle.ConstantTimeCompare(u[:], a.user[:])
	passwordOK := subtle.ConstantTimeCompare(p[:], a.password[:])
	return userOK&passwordOK == 1
}

// challenge answers an unauthenticated request: 401 in the envelope, asking for basic credentials.
func challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="workwebui", charset="UTF-8"`)
	writeError(w, http.StatusUnauthorized)
}
