// Package doccheck holds the test that keeps the docs' promises honest:
// every test a page names as keeping a promise must exist. It has no code
// of its own.
package doccheck
