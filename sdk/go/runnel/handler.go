package runnel

import "errors"

// Handler handles one message at a time. The host calls Handle for each message of a batch,
// in order; the same handler handles every batch of the instance, so it can keep state.
type Handler interface {
	// Handle sends the outputs of message to out (zero or more), or fails the message by
	// returning an error (see Failure). After a failure, the outputs this call sent are
	// discarded. A panic fails the message permanently with the panic's text.
	Handle(message Message, out *Outputs) error
}

// HandlerFunc lets a plain function be a Handler.
type HandlerFunc func(message Message, out *Outputs) error

func (f HandlerFunc) Handle(message Message, out *Outputs) error { return f(message, out) }

// Init builds the handler from the plugin's configuration when the instance starts. Its
// error refuses the plugin with that message, which should say which setting is wrong and how
// to fix it.
type Init func(config *Config) (Handler, error)

var (
	// newHandler is what Export registered.
	newHandler Init
	// handler is what init built; nil until init succeeds.
	handler Handler
	// outputs is the one writer of the instance, so its buffers are allocated once.
	outputs Outputs
	// topicNames is the one topic table of the instance's batch reader.
	topicNames []string
)

// Export registers the plugin's handler. Call it once, from an init function of package main:
//
//	func init() { runnel.Export(func(*runnel.Config) (runnel.Handler, error) { return Uppercase{}, nil }) }
func Export(init Init) { newHandler = init }

// initHandler is the init export: builds the handler that every later batch uses. A failed
// init leaves no handler behind, so batches fail with a clear message instead of running on
// an older configuration.
func initHandler(config *Config) (err error) {
	handler = nil
	if newHandler == nil {
		return errors.New("the plugin registered no handler: call runnel.Export from an init function of package main")
	}
	defer func() {
		if p := recover(); p != nil {
			err = errors.New("init panicked: " + panicText(p))
		}
	}()
	built, err := newHandler(config)
	if err != nil {
		return err
	}
	if built == nil {
		return errors.New("init returned no handler and no error")
	}
	handler = built
	return nil
}

// handleBatch runs h over every message of the encoded batch and returns the encoded answer:
// exactly one outcome per message, in order. h is nil when init has not succeeded. The answer
// is owned by out and valid until its next batch.
func handleBatch(h Handler, batch []byte, out *Outputs) []byte {
	view, err := parseBatch(batch, topicNames)
	if err != nil {
		// Retrying the same batch against the same host cannot help, hence permanent.
		return failEveryMessage(out, claimedCount(batch), Permanent("the plugin received a malformed batch ("+
			err.Error()+"); this is a bug in the Runnel host or the Runnel Go SDK"))
	}
	topicNames = view.topics
	if h == nil {
		return failEveryMessage(out, view.count,
			Permanent("the plugin was not initialized: the host called handle before init succeeded"))
	}
	out.begin(view.count, len(batch))
	for next := 0; next < view.count; {
		next = handleFrom(h, &view, next, out)
	}
	return out.finish()
}

// handleFrom runs the handler on messages first, first+1, ... and returns where to go on: the
// end of the batch, or the message after one that panicked, which fails permanently with the
// panic's text. One deferred recover per batch (rather than per message) keeps the common
// path cheap. The message that panicked is found from the outcomes recorded so far, one per
// message, rather than from the loop's index: an index the deferred function used would live
// in memory instead of a register, and cost a load and a store per message.
func handleFrom(h Handler, view *batchView, first int, out *Outputs) (next int) {
	defer func() {
		if p := recover(); p != nil {
			out.failMessage(Permanent("the handler panicked: " + panicText(p)))
			next = len(out.outcomes)
		}
	}()
	messages := view.messages
	for i := first; i < len(messages); i++ {
		if err := h.Handle(Message{batch: view, record: &messages[i]}, out); err != nil {
			out.failMessage(failureOf(err))
		} else {
			out.succeed()
		}
	}
	return len(messages)
}

// failureOf is the failure of a message whose handler returned err.
func failureOf(err error) *Failure {
	var failure *Failure
	if errors.As(err, &failure) && failure != nil {
		return failure
	}
	return Permanent(err.Error())
}

// panicText is the text of a panic's value, without the fmt package, which would make every
// plugin larger.
func panicText(p any) string {
	switch value := p.(type) {
	case error:
		return value.Error()
	case string:
		return value
	case interface{ String() string }:
		return value.String()
	}
	return "a value of an unprintable type"
}

// claimedCount is the message count a batch's header claims, so that even a malformed batch
// gets one failure per message; 0 if not even that can be read (the host then sees the
// answer's count differ).
func claimedCount(batch []byte) int {
	if len(batch) < 8 {
		return 0
	}
	// A corrupt count must not make the plugin allocate without bound.
	return min(int(le.Uint32(batch[4:])), len(batch))
}

func failEveryMessage(out *Outputs, count int, failure *Failure) []byte {
	out.begin(count, 0)
	for range count {
		out.finishMessage(failure)
	}
	return out.finish()
}
