package runnel

// FailureKind tells the host what to do with a message that failed.
type FailureKind uint32

const (
	// Succeeded is the kind of a message that did not fail; it appears only in answers.
	Succeeded FailureKind = 0
	// TransientFailure: a later retry of the same message may succeed.
	TransientFailure FailureKind = 1
	// PermanentFailure: retrying cannot help; the host dead-letters or skips the message.
	PermanentFailure FailureKind = 2
)

func (k FailureKind) String() string {
	switch k {
	case Succeeded:
		return "succeeded"
	case TransientFailure:
		return "transient"
	case PermanentFailure:
		return "permanent"
	}
	return "unknown"
}

// Failure is why a handler could not process one message. Return it from Handle; any other
// non-nil error fails the message permanently with the error's text.
type Failure struct {
	Kind    FailureKind
	Message string
}

// Permanent is a failure that retrying the same message cannot fix.
func Permanent(message string) *Failure { return &Failure{PermanentFailure, message} }

// Transient is a failure that a later retry of the same message may not hit.
func Transient(message string) *Failure { return &Failure{TransientFailure, message} }

func (f *Failure) Error() string { return f.Kind.String() + " failure: " + f.Message }
