// Package execpython is an example, not a library: Greet written as a
// Python script behind an exec connection (greet.py, definitions/). See
// README.md; example_test.go runs it through the jobrunner CLI.
package execpython
