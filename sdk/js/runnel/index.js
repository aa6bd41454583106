// Write Runnel message handlers in JavaScript or TypeScript.
//
// A handler sees one message at a time and sends zero or more outputs for it. This module turns
// that into the batch-at-a-time `runnel:plugin` contract and its byte encoding, so neither ever
// shows up in a plugin. The SDK's README (sdk/js/README.md in the Runnel repository) has a complete
// example.

import { log as hostLog } from 'runnel:plugin/log@0.2.0';

import {
  BatchView,
  HEADER_WORDS,
  MESSAGE_WORDS,
  M_FIRST_HEADER,
  M_HEADER_COUNT,
  M_KEY,
  M_OFFSET,
  M_PARTITION,
  M_TIMESTAMP,
  M_TOPIC,
  M_VALUE,
  NO_KEY,
  OutcomesWriter,
  PERMANENT,
  TableScratch,
  SUCCEEDED,
  TRANSIENT,
  decodeText,
} from './encoding.js';

/** String settings from the pipeline's configuration of this plugin. */
export class Config {
  /** @param entries `[name, value]` pairs, in the order the host passed them. */
  constructor(entries = []) {
    this.entries = Array.isArray(entries) ? entries : Object.entries(entries);
  }

  /**
   * The value of setting `name`, or undefined. When a name is repeated the last value wins,
   * as a later line of a configuration file overrides an earlier one.
   */
  get(name) {
    for (let index = this.entries.length - 1; index >= 0; index--) {
      if (this.entries[index][0] === name) return this.entries[index][1];
    }
    return undefined;
  }

  /** The value of setting `name`; throws an error that tells the user which setting to add. */
  require(name) {
    const value = this.get(name);
    if (value === undefined) {
      throw new Error(`missing required setting \`${name}\`: add it to this plugin's config`);
    }
    return value;
  }

  [Symbol.iterator]() {
    return this.entries[Symbol.iterator]();
  }
}

/**
 * The failure of one message: return it from `handle`, or throw it. A transient failure asks
 * the host to retry the message; a permanent one says retrying cannot help, and the host
 * dead-letters or skips it. Either way the outputs the message sent are discarded.
 */
export class Failure extends Error {
  constructor(kind, message) {
    super(message);
    this.name = 'Failure';
    /** `'transient'` or `'permanent'`. */
    this.kind = kind;
  }

  /** A failure that retrying the same message cannot fix. */
  static permanent(message) {
    return new Failure('permanent', message);
  }

  /** A failure that a later retry of the same message may not hit. */
  static transient(message) {
    return new Failure('transient', message);
  }

  toString() {
    return `${this.kind} failure: ${this.message}`;
  }
}

/**
 * Logging into the host's log, where each line is tagged with the plugin's name. Every call
 * crosses into the host: log per batch or per problem, not per message at `info`.
 */
export const log = {
  trace: (message) => hostLog('trace', String(message)),
  debug: (message) => hostLog('debug', String(message)),
  info: (message) => hostLog('info', String(message)),
  warn: (message) => hostLog('warn', String(message)),
  error: (message) => hostLog('error', String(message)),
};

const EMPTY_BYTES = new Uint8Array(0);

// The message record's fields as constants of this module: the engine's interpreter reads an
// imported binding for about 500 WebAssembly instructions more than one of its own module's.
const KEY = M_KEY;
const VALUE = M_VALUE;
const HEADER_COUNT = M_HEADER_COUNT;
const NO_KEY_OFFSET = NO_KEY;
const OK = SUCCEEDED;

/**
 * The headers of one message, in the order the producer wrote them; a name may repeat.
 * Iterating gives `[name, value]` pairs. Passing the object itself to `OutputBuilder.headers`
 * copies the bytes without decoding the names.
 */
export class Headers {
  constructor(batch, first, count) {
    this.batch = batch;
    this.first = first;
    this.length = count;
  }

  /** The name of header `index`. */
  name(index) {
    const at = this.recordAt(index);
    return decodeText(this.batch.bytes(this.batch.headers[at], this.batch.headers[at + 1]), 'a header name');
  }

  /** The value of header `index`. */
  value(index) {
    const at = this.recordAt(index);
    return this.batch.bytes(this.batch.headers[at + 2], this.batch.headers[at + 3]);
  }

  /** The first word of header `index` in the batch's header table. */
  recordAt(index) {
    if (!(index >= 0 && index < this.length)) {
      throw new RangeError(`header ${index} of ${this.length}`);
    }
    return (this.first + index) * HEADER_WORDS;
  }

  *[Symbol.iterator]() {
    for (let index = 0; index < this.length; index++) {
      yield [this.name(index), this.value(index)];
    }
  }
}

const NO_HEADERS = new Headers(null, 0, 0);

/**
 * One input message, read from the batch when a property is asked for: its bytes are views
 * into the batch, not copies, valid until `handle` returns.
 */
export class Message {
  constructor(batch, index) {
    this.batch = batch;
    this.at = index * MESSAGE_WORDS;
  }

  // The key and value getters slice the batch themselves rather than through BatchView.bytes:
  // a call costs the interpreter about 2,500 instructions, a sixth of a getter.

  /** The key, or undefined when the message has no key (Kafka tells that from an empty key). */
  get key() {
    const batch = this.batch;
    const messages = batch.messages;
    const at = this.at + KEY;
    const offset = messages[at];
    if (offset === NO_KEY_OFFSET) return undefined;
    const start = batch.dataAt + offset;
    return batch.buffer.subarray(start, start + messages[at + 1]);
  }

  /** The payload. */
  get value() {
    const batch = this.batch;
    const messages = batch.messages;
    const at = this.at + VALUE;
    const start = batch.dataAt + messages[at];
    return batch.buffer.subarray(start, start + messages[at + 1]);
  }

  /** Every header in the order the producer wrote them; a name may repeat. */
  get headers() {
    const count = this.batch.messages[this.at + HEADER_COUNT];
    if (count === 0) return NO_HEADERS;
    return new Headers(this.batch, this.batch.messages[this.at + M_FIRST_HEADER], count);
  }

  /**
   * The value of the last header called `name` (names are case-sensitive), like Kafka's
   * `lastHeader`, or undefined.
   */
  header(name) {
    const headers = this.headers;
    for (let index = headers.length - 1; index >= 0; index--) {
      if (headers.name(index) === name) return headers.value(index);
    }
    return undefined;
  }

  /** The topic the message was read from. */
  get topic() {
    return this.batch.topics[this.batch.messages[this.at + M_TOPIC]];
  }

  /** The Kafka partition, or -1 for inputs without partitions. */
  get partition() {
    return this.batch.messages[this.at + M_PARTITION] | 0;
  }

  /** The Kafka offset, or -1 for inputs without offsets. */
  get offset() {
    return int64(this.batch.messages, this.at + M_OFFSET);
  }

  /** Milliseconds since the Unix epoch, or undefined when the input does not know it. */
  get timestamp() {
    const timestamp = int64(this.batch.messages, this.at + M_TIMESTAMP);
    return timestamp === -1 ? undefined : timestamp;
  }

  /** The name of the pipeline input (Kafka consumer or Dapr binding) the message came from. */
  get source() {
    return this.batch.source;
  }
}

/** The i64 at `words[at]` as a Number: exact for every Kafka offset and millisecond time. */
function int64(words, at) {
  return (words[at + 1] | 0) * 0x1_0000_0000 + words[at];
}

/**
 * Sets the optional parts of the output that `Outputs.send` just appended. Each method changes
 * that output in place and returns the builder, so calls chain; the builder always works on the
 * latest output, so use it before the next `send`.
 */
export class OutputBuilder {
  constructor(writer) {
    this.writer = writer;
  }

  /**
   * Sets the key (bytes or a string); undefined or null (the default) sends the output without
   * a key, which Kafka distinguishes from an empty key.
   */
  key(key) {
    this.writer.setKey(key);
    return this;
  }

  /**
   * Changes the value in place: `edit` gets the output's bytes. Sending the input and editing
   * the copy is the cheapest way to transform a message.
   */
  editValue(edit) {
    edit(this.writer.lastValue());
    return this;
  }

  /** Adds a header (value: bytes or a string); names may repeat. */
  header(name, value) {
    this.writer.addHeader(name, value ?? EMPTY_BYTES);
    return this;
  }

  /** Adds every header of `headers`: a message's `headers`, or any iterable of pairs. */
  headers(headers) {
    if (headers === NO_HEADERS) return this;
    if (headers instanceof Headers) {
      // Copies the bytes as they are: no name is decoded into a string.
      const batch = headers.batch;
      for (let index = 0; index < headers.length; index++) {
        const at = headers.recordAt(index);
        const record = batch.headers;
        this.writer.addHeader(
          batch.bytes(record[at], record[at + 1]),
          batch.bytes(record[at + 2], record[at + 3]),
        );
      }
    } else {
      for (const [name, value] of headers) this.header(name, value);
    }
    return this;
  }

  /** Sends the output to `topic` instead of the pipeline's default output topic. */
  topic(topic) {
    this.writer.setTopic(topic);
    return this;
  }
}

/**
 * Where a handler sends the outputs of the message it is handling: `send(value)` sends `value`
 * (bytes or a string) to the default topic, without key or headers, and returns the
 * OutputBuilder that changes that. Outputs go to the pipeline's default output topic unless
 * `topic` says otherwise; if the message then fails, its outputs are discarded. It is the
 * answer's writer itself, so that a send costs one call.
 */
export { OutcomesWriter as Outputs };

/** The handler object for a definition: a class or an object with `handle`. */
function createHandler(definition, config) {
  if (typeof definition === 'function') {
    return typeof definition.init === 'function' ? definition.init(config) : new definition();
  }
  if (typeof definition.init === 'function') definition.init(config);
  return definition;
}

/** The outcome kind and failure text of a value a handler threw or returned. */
function failureOf(error) {
  if (error instanceof Failure) {
    return [error.kind === 'transient' ? TRANSIENT : PERMANENT, String(error.message)];
  }
  // Anything else is a bug that retrying will not fix; its text is what a reader needs.
  return [PERMANENT, String(error)];
}

/**
 * Runs `handler` over every message of the encoded `batch` and returns the encoded answer:
 * exactly one outcome per message, in order. `handler` is undefined when `init` has not
 * succeeded.
 */
export function handleBatch(handler, batch, writer, scratch = undefined) {
  let view;
  try {
    view = new BatchView(batch, scratch);
  } catch (malformed) {
    // Retrying the same batch against the same host cannot help, hence permanent.
    return failEveryMessage(
      writer,
      claimedCount(batch),
      `the plugin received a malformed batch (${malformed.message}); this is a bug in the ` +
        'Runnel host or the Runnel JavaScript SDK',
    );
  }
  if (handler === undefined) {
    return failEveryMessage(
      writer,
      view.count,
      'the plugin was not initialized: the host called handle before init succeeded',
    );
  }

  writer.begin(view.count, batch.length);
  const count = view.count;
  for (let index = 0; index < count; index++) {
    let kind = OK;
    let text;
    try {
      const result = handler.handle(new Message(view, index), writer);
      if (result === undefined) {
        // Succeeded: the common case, checked first.
      } else if (result instanceof Failure) {
        [kind, text] = failureOf(result);
      } else if (typeof result.then === 'function') {
        [kind, text] = [PERMANENT, 'handle returned a promise: handlers must be synchronous'];
      }
    } catch (error) {
      [kind, text] = failureOf(error);
    }
    writer.finishMessage(kind, text);
  }
  return writer.finish();
}

/**
 * The message count a batch's header claims, so that even a malformed batch gets one failure
 * per message; 0 if not even that can be read. A corrupt count must not make the plugin
 * allocate without bound, hence the cap.
 */
function claimedCount(batch) {
  if (batch.length < 8) return 0;
  const count = new DataView(batch.buffer, batch.byteOffset, 8).getUint32(4, true);
  return Math.min(count, batch.length);
}

function failEveryMessage(writer, count, text) {
  writer.begin(count, 0);
  for (let index = 0; index < count; index++) writer.finishMessage(PERMANENT, text);
  return writer.finish();
}

/**
 * Builds the `runnel:plugin/handler` export from a handler definition. The plugin's main module
 * exports the result under the name `handler`:
 *
 *     export const handler = exportHandler(Uppercase);
 *
 * `definition` is a class whose instances have `handle(message, out)`, built by its static
 * `init(config)` when it has one (an error thrown there refuses the plugin) or else by `new`;
 * or a plain object with `handle` and optionally `init(config)`. The handler lives as long as
 * the instance, so it can keep state across messages and batches.
 */
export function exportHandler(definition) {
  let handler;
  const writer = new OutcomesWriter();
  writer.builder = new OutputBuilder(writer);
  const scratch = new TableScratch();
  return {
    init(settings) {
      // A failed init leaves no handler behind, so batches fail with a clear message instead
      // of running on an older configuration.
      handler = undefined;
      try {
        handler = createHandler(definition, new Config(settings));
      } catch (error) {
        throw error instanceof Error ? error.message : String(error);
      }
    },
    handle(batch) {
      const answer = handleBatch(handler, batch, writer, scratch);
      // Frees the batch's memory now rather than at the engine's next full garbage collection,
      // which comes only after tens of megabytes, past the host's default memory limit. Views
      // of the batch that a handler kept become empty, as documented.
      if (batch.byteOffset === 0 && batch.length === batch.buffer.byteLength) {
        batch.buffer.transfer?.(0);
      }
      return answer;
    },
  };
}
