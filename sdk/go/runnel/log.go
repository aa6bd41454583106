package runnel

// Logging into the host's log, where each line is tagged with the plugin's name. Every call
// crosses into the host, so log per batch or per problem, not per message at info level.

// logLevel is the WIT enum runnel:plugin/log.level, in its order.
type logLevel uint32

const (
	levelTrace logLevel = iota
	levelDebug
	levelInfo
	levelWarn
	levelError
)

// Trace logs message at trace level.
func Trace(message string) { hostLog(levelTrace, message) }

// Debug logs message at debug level.
func Debug(message string) { hostLog(levelDebug, message) }

// Info logs message at info level.
func Info(message string) { hostLog(levelInfo, message) }

// Warn logs message at warn level.
func Warn(message string) { hostLog(levelWarn, message) }

// Error logs message at error level.
func Error(message string) { hostLog(levelError, message) }
