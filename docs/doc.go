// Package docs holds zkpost's design documents (the Markdown files beside this one). It has no
// code: its test keeps citations true, failing when a Go comment cites a document outside the
// repository or a docs/ file, section (§N) or anchor (#name) that does not exist, and when a
// relative link in README.md or docs/*.md points nowhere.
package docs
