//go:build !wasip1

package runnel

import "os"

// Outside a Runnel host (in a native test), log lines go to standard error.
func hostLog(level logLevel, message string) {
	names := [...]string{"TRACE", "DEBUG", "INFO", "WARN", "ERROR"}
	os.Stderr.WriteString(names[level] + " " + message + "\n")
}
