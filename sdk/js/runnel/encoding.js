// The batch encoding of wit/ENCODING.md: a checking reader of batches and a writer of answers.
//
// Both work on the bytes in place: a batch is read through a DataView over the buffer the host
// passed in, and an answer is written straight into one growing buffer, so a message costs no
// copy of its key or value until a handler sends one on.

export const HEADER_LEN = 40;
export const MESSAGE_LEN = 48;
export const TOPIC_LEN = 8;
export const HEADER_RECORD_LEN = 16;
export const OUTCOME_LEN = 16;
export const OUTPUT_LEN = 32;
/** The offset of a key span that stands for "no key". */
export const NO_KEY = 0xffffffff;

export const SUCCEEDED = 0;
export const TRANSIENT = 1;
export const PERMANENT = 2;

const BATCH_MAGIC = 0x31424e52; // "RNB1" read as a little-endian u32
const ANSWER_MAGIC = 0x314f4e52; // "RNO1"

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const utf8 = new TextEncoder();

/** Why a buffer is not a valid batch or answer. */
export class DecodeError extends Error {
  constructor(message) {
    super(message);
    this.name = 'DecodeError';
  }
}

/** Writes a Number as a little-endian i64 (exact up to 2^53). */
export function writeI64(view, at, value) {
  view.setUint32(at, value >>> 0, true);
  view.setInt32(at + 4, Math.floor(value / 0x1_0000_0000), true);
}

/** Decodes `bytes` as UTF-8, or throws a DecodeError naming `what`. */
export function decodeText(bytes, what) {
  try {
    return strictUtf8.decode(bytes);
  } catch (error) {
    throw new DecodeError(`${what} is not UTF-8`);
  }
}

/** Checks the magic and length of a batch or answer and returns a DataView over it. */
export function readPreamble(buffer, magic, what) {
  if (buffer.length < HEADER_LEN) {
    throw new DecodeError(
      `${what} is ${buffer.length} bytes, shorter than its ${HEADER_LEN}-byte header`,
    );
  }
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  if (view.getUint32(0, true) !== magic) {
    const expected = magic === BATCH_MAGIC ? 'RNB1' : 'RNO1';
    throw new DecodeError(
      `${what} does not start with "${expected}": it is not encoding version 1`,
    );
  }
  return view;
}

/** Checks that a table of `count` records of `size` bytes at `at` lies inside the buffer. */
export function checkTable(buffer, at, count, size, name) {
  if (at + count * size > buffer.length) {
    throw new DecodeError(
      `the ${name} table (${count} records at byte ${at}) runs past the end of the ` +
        `${buffer.length}-byte buffer`,
    );
  }
}

/** Checks that a span lies inside a data area of `dataLength` bytes; `what` names it. */
export function checkSpan(offset, length, dataLength, what) {
  if (offset + length > dataLength) {
    throw new DecodeError(
      `${what} (${length} bytes at ${offset}) runs past the ${dataLength}-byte data area`,
    );
  }
}

/** Like checkSpan, for a key span, which may also say "no key". */
export function checkKeySpan(offset, length, dataLength, what) {
  if (offset === NO_KEY) {
    if (length !== 0) throw new DecodeError(`${what} marks no key but has a length`);
    return;
  }
  checkSpan(offset, length, dataLength, what);
}

export function checkHeaderRange(first, count, headerCount, owner) {
  if (first + count > headerCount) {
    throw new DecodeError(
      `${owner} has headers ${first}..${first + count} but the header table has ${headerCount}`,
    );
  }
}

function checkDataAt(buffer, dataAt) {
  if (dataAt > buffer.length) {
    throw new DecodeError(
      `the data area starts at byte ${dataAt}, past the end of the ${buffer.length}-byte buffer`,
    );
  }
}

/**
 * A copy of a table as 32-bit words, into `scratch` when it is large enough. Tables in a batch
 * need not be aligned; the copy is, so that a field is one array read rather than a DataView
 * call, which costs several times more in an interpreter. WebAssembly is little-endian, as the
 * encoding is.
 */
function wordsOf(buffer, at, count, size, scratch) {
  const length = (count * size) / 4;
  const words = scratch !== undefined && scratch.length >= length
    ? scratch.subarray(0, length)
    : new Uint32Array(length);
  new Uint8Array(words.buffer, words.byteOffset, length * 4).set(
    buffer.subarray(at, at + count * size),
  );
  return words;
}

/**
 * Word arrays that one BatchView after another copies its tables into, so that a batch
 * allocates no table memory: the engine's garbage collector runs rarely, and memory that waits
 * for it counts against the plugin's limit.
 */
export class TableScratch {
  constructor() {
    this.messages = new Uint32Array(0);
    this.headers = new Uint32Array(0);
    this.topics = new Uint32Array(0);
  }

  /** Grows the arrays to hold the tables of a batch with these counts. */
  reserve(messages, headers, topics) {
    if (messages * MESSAGE_WORDS > this.messages.length) {
      this.messages = new Uint32Array(messages * MESSAGE_WORDS * 2);
    }
    if (headers * HEADER_WORDS > this.headers.length) {
      this.headers = new Uint32Array(headers * HEADER_WORDS * 2);
    }
    if (topics * 2 > this.topics.length) this.topics = new Uint32Array(topics * 2 * 2);
  }
}

// Fields of a message record, in 32-bit words.
export const M_OFFSET = 0;
export const M_TIMESTAMP = 2;
export const M_PARTITION = 4;
export const M_TOPIC = 5;
export const M_KEY = 6;
export const M_VALUE = 8;
export const M_FIRST_HEADER = 10;
export const M_HEADER_COUNT = 11;
export const MESSAGE_WORDS = MESSAGE_LEN / 4;
export const HEADER_WORDS = HEADER_RECORD_LEN / 4;

/**
 * A batch whose every table, span and string has been checked: what the SDK reads messages
 * from. Construction throws a DecodeError for a malformed batch. With a TableScratch, the view
 * keeps its tables there, and is valid until the next view made with the same scratch.
 */
export class BatchView {
  constructor(buffer, scratch = undefined) {
    const view = readPreamble(buffer, BATCH_MAGIC, 'the batch');
    this.buffer = buffer;
    this.count = view.getUint32(4, true);
    const topicCount = view.getUint32(8, true);
    const headerCount = view.getUint32(12, true);
    const topicsAt = view.getUint32(16, true);
    const messagesAt = view.getUint32(20, true);
    const headersAt = view.getUint32(24, true);
    this.dataAt = view.getUint32(28, true);

    checkTable(buffer, topicsAt, topicCount, TOPIC_LEN, 'topics');
    checkTable(buffer, messagesAt, this.count, MESSAGE_LEN, 'messages');
    checkTable(buffer, headersAt, headerCount, HEADER_RECORD_LEN, 'headers');
    checkDataAt(buffer, this.dataAt);
    const dataLength = buffer.length - this.dataAt;
    scratch?.reserve(this.count, headerCount, topicCount);
    /** The message records, MESSAGE_WORDS words each. */
    this.messages = wordsOf(buffer, messagesAt, this.count, MESSAGE_LEN, scratch?.messages);
    /** The header records: name offset and length, value offset and length. */
    this.headers = wordsOf(buffer, headersAt, headerCount, HEADER_RECORD_LEN, scratch?.headers);
    const topics = wordsOf(buffer, topicsAt, topicCount, TOPIC_LEN, scratch?.topics);

    const sourceOffset = view.getUint32(32, true);
    const sourceLength = view.getUint32(36, true);
    checkSpan(sourceOffset, sourceLength, dataLength, 'the source');
    this.source = decodeText(this.bytes(sourceOffset, sourceLength), 'the source');
    // Batches hold one or a few topics: decoding them all once is cheaper than per message.
    this.topics = new Array(topicCount);
    for (let index = 0; index < topicCount; index++) {
      const [offset, length] = [topics[index * 2], topics[index * 2 + 1]];
      checkSpan(offset, length, dataLength, `topic ${index}`);
      this.topics[index] = decodeText(this.bytes(offset, length), `topic ${index}`);
    }
    const headers = this.headers;
    for (let index = 0; index < headerCount; index++) {
      const at = index * HEADER_WORDS;
      checkSpan(headers[at], headers[at + 1], dataLength, `the name of header ${index}`);
      checkSpan(headers[at + 2], headers[at + 3], dataLength, `the value of header ${index}`);
      checkUtf8(this.bytes(headers[at], headers[at + 1]), index);
    }
    // Run for every message, so the checks are written out and an error's text is built only
    // when one fails: in an interpreter, building strings and closures is what costs.
    const messages = this.messages;
    for (let index = 0; index < this.count; index++) {
      const at = index * MESSAGE_WORDS;
      const topic = messages[at + M_TOPIC];
      if (topic >= topicCount) {
        throw new DecodeError(`message ${index} names topic ${topic} of ${topicCount}`);
      }
      const keyOffset = messages[at + M_KEY];
      const keyLength = messages[at + M_KEY + 1];
      if (keyOffset === NO_KEY ? keyLength !== 0 : keyOffset + keyLength > dataLength) {
        checkKeySpan(keyOffset, keyLength, dataLength, `the key of message ${index}`);
      }
      const valueOffset = messages[at + M_VALUE];
      const valueLength = messages[at + M_VALUE + 1];
      if (valueOffset + valueLength > dataLength) {
        checkSpan(valueOffset, valueLength, dataLength, `the value of message ${index}`);
      }
      const firstHeader = messages[at + M_FIRST_HEADER];
      const ownHeaders = messages[at + M_HEADER_COUNT];
      if (firstHeader + ownHeaders > headerCount) {
        checkHeaderRange(firstHeader, ownHeaders, headerCount, `message ${index}`);
      }
    }
  }

  /** The bytes of a checked span, without a copy. */
  bytes(offset, length) {
    const start = this.dataAt + offset;
    return this.buffer.subarray(start, start + length);
  }
}

/** Checks that a header name is UTF-8, without decoding it when it is plain ASCII. */
function checkUtf8(bytes, index) {
  for (let at = 0; at < bytes.length; at++) {
    if (bytes[at] >= 0x80) {
      decodeText(bytes, `the name of header ${index}`);
      return;
    }
  }
}

/** A Uint8Array with room for at least `needed` bytes, keeping the first `used` of `bytes`. */
function grown(bytes, used, needed) {
  if (needed <= bytes.length) return bytes;
  const larger = new Uint8Array(Math.max(needed, bytes.length * 2));
  larger.set(bytes.subarray(0, used));
  return larger;
}

/**
 * A table of fixed-size records, as 32-bit words, that grows as records are appended. Writing a
 * field is one array store (see wordsOf).
 */
class TableWriter {
  constructor(size) {
    this.wordsPerRecord = size / 4;
    this.words = new Uint32Array(0);
    this.count = 0;
  }

  reset(expected) {
    this.count = 0;
    this.reserve(expected);
  }

  reserve(records) {
    if (records * this.wordsPerRecord > this.words.length) {
      const larger = new Uint32Array(Math.max(records, this.count * 2) * this.wordsPerRecord);
      larger.set(this.words.subarray(0, this.count * this.wordsPerRecord));
      this.words = larger;
    }
  }

  /** Appends a record whose every field the caller sets, and returns its first word. */
  append() {
    if ((this.count + 1) * this.wordsPerRecord > this.words.length) this.reserve(this.count + 1);
    const at = this.count * this.wordsPerRecord;
    this.count += 1;
    return at;
  }

  /** The records as bytes. */
  bytes() {
    return new Uint8Array(this.words.buffer, 0, this.count * this.wordsPerRecord * 4);
  }
}

// Fields of an output record, in 32-bit words.
const O_TOPIC = 0;
const O_KEY = 1;
const O_VALUE = 3;
const O_FIRST_HEADER = 5;
const O_HEADER_COUNT = 6;
const O_RESERVED = 7;

/**
 * Writes the answer to one batch: an outcome per message in order, the outputs of each, their
 * headers and topics. The `set*` and `addHeader` methods change the last output only, so the
 * answer is well-formed at every step. One writer serves every batch of an instance, keeping
 * its memory.
 */
export class OutcomesWriter {
  constructor() {
    // The answer itself: the header, then the data area written in place; the tables are
    // appended behind the data when the answer is finished.
    this.buffer = new Uint8Array(HEADER_LEN);
    this.dataEnd = HEADER_LEN;
    this.outcomes = new TableWriter(OUTCOME_LEN);
    this.outputs = new TableWriter(OUTPUT_LEN);
    this.headers = new TableWriter(HEADER_RECORD_LEN);
    // Topics other than the default, in the order first sent to: their names, their spans
    // (offset and length, flat) and each name's index.
    this.topicNames = [];
    this.topicSpans = [];
    this.topicIndex = new Map();
    // What the writer held when the current message started, to roll back to on failure.
    this.markData = 0;
    this.markOutputs = 0;
    this.markHeaders = 0;
    this.markTopics = 0;
    // The first word of the output that the `set*` methods change.
    this.lastOutput = -1;
    // The length of what pushText wrote last.
    this.textLength = 0;
    // What `send` returns; the SDK sets it (index.js).
    this.builder = undefined;
  }

  /**
   * Starts the answer to a batch of `messages`, sized for the common case of one output per
   * message about as large as its input.
   */
  begin(messages, dataBytes) {
    this.buffer = grown(this.buffer, 0, HEADER_LEN + dataBytes);
    this.dataEnd = HEADER_LEN;
    this.outcomes.reset(messages);
    this.outputs.reset(messages);
    this.headers.reset(0);
    this.topicNames.length = 0;
    this.topicSpans.length = 0;
    this.topicIndex.clear();
    this.lastOutput = -1;
    this.markData = HEADER_LEN;
    this.markOutputs = 0;
    this.markHeaders = 0;
    this.markTopics = 0;
  }

  /** Copies `bytes` into the data area and returns their offset in it. */
  pushBytes(bytes) {
    const end = this.dataEnd + bytes.length;
    if (end > this.buffer.length) this.buffer = grown(this.buffer, this.dataEnd, end);
    this.buffer.set(bytes, this.dataEnd);
    const offset = this.dataEnd - HEADER_LEN;
    this.dataEnd = end;
    return offset;
  }

  /** Encodes `text` as UTF-8 into the data area; returns its offset and sets `textLength`. */
  pushText(text) {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit.
    const room = this.dataEnd + text.length * 3;
    if (room > this.buffer.length) this.buffer = grown(this.buffer, this.dataEnd, room);
    const offset = this.dataEnd - HEADER_LEN;
    this.textLength = utf8.encodeInto(text, this.buffer.subarray(this.dataEnd)).written;
    this.dataEnd += this.textLength;
    return offset;
  }

  /**
   * Appends an output of `value` (bytes or a string) to the default topic, without key or
   * headers, and returns `this.builder`, through which a handler changes that output.
   */
  send(value) {
    // The common case is written out: a function call costs more than all the stores below in
    // an interpreter.
    let offset = this.dataEnd - HEADER_LEN;
    let length;
    if (typeof value === 'string') {
      offset = this.pushText(value);
      length = this.textLength;
    } else {
      length = value.length;
      const end = this.dataEnd + length;
      if (end > this.buffer.length) this.buffer = grown(this.buffer, this.dataEnd, end);
      this.buffer.set(value, this.dataEnd);
      this.dataEnd = end;
    }
    const outputs = this.outputs;
    if ((outputs.count + 1) * 8 > outputs.words.length) outputs.reserve(outputs.count + 1);
    const at = outputs.count * 8;
    outputs.count += 1;
    const words = outputs.words;
    words[at + O_TOPIC] = 0;
    words[at + O_KEY] = NO_KEY;
    words[at + O_KEY + 1] = 0;
    words[at + O_VALUE] = offset;
    words[at + O_VALUE + 1] = length;
    words[at + O_FIRST_HEADER] = this.headers.count;
    words[at + O_HEADER_COUNT] = 0;
    words[at + O_RESERVED] = 0;
    this.lastOutput = at;
    return this.builder;
  }

  /** The last output's value, to change in place. */
  lastValue() {
    const words = this.outputs.words;
    const start = HEADER_LEN + words[this.lastOutput + O_VALUE];
    return this.buffer.subarray(start, start + words[this.lastOutput + O_VALUE + 1]);
  }

  /** Sets the last output's key: bytes, a string, or undefined or null for none. */
  setKey(key) {
    let offset = NO_KEY;
    let length = 0;
    if (typeof key === 'string') {
      offset = this.pushText(key);
      length = this.textLength;
    } else if (key !== undefined && key !== null) {
      offset = this.pushBytes(key);
      length = key.length;
    }
    const words = this.outputs.words;
    words[this.lastOutput + O_KEY] = offset;
    words[this.lastOutput + O_KEY + 1] = length;
  }

  /** Adds a header to the last output: `name` a string or UTF-8 bytes, `value` either. */
  addHeader(name, value) {
    const nameOffset = typeof name === 'string' ? this.pushText(name) : this.pushBytes(name);
    const nameLength = typeof name === 'string' ? this.textLength : name.length;
    const valueOffset = typeof value === 'string' ? this.pushText(value) : this.pushBytes(value);
    const valueLength = typeof value === 'string' ? this.textLength : value.length;
    const at = this.headers.append();
    const words = this.headers.words;
    words[at] = nameOffset;
    words[at + 1] = nameLength;
    words[at + 2] = valueOffset;
    words[at + 3] = valueLength;
    this.outputs.words[this.lastOutput + O_HEADER_COUNT] += 1;
  }

  /** Sends the last output to `topic` rather than the default topic. */
  setTopic(topic) {
    let index = this.topicIndex.get(topic);
    if (index === undefined) {
      index = this.topicNames.length;
      this.topicSpans.push(this.pushText(topic), this.textLength);
      this.topicNames.push(topic);
      this.topicIndex.set(topic, index);
    }
    this.outputs.words[this.lastOutput + O_TOPIC] = index + 1;
  }

  /**
   * Records the outcome of the message whose outputs were sent since the previous call: keeps
   * them, or with a failure (kind TRANSIENT or PERMANENT) discards them and records it.
   */
  finishMessage(kind, failureMessage) {
    let messageOffset = 0;
    let messageLength = 0;
    if (kind !== SUCCEEDED) {
      this.rollBack();
      messageOffset = this.pushText(failureMessage);
      messageLength = this.textLength;
    }
    const outcomes = this.outcomes;
    if ((outcomes.count + 1) * 4 > outcomes.words.length) outcomes.reserve(outcomes.count + 1);
    const at = outcomes.count * 4;
    outcomes.count += 1;
    const words = outcomes.words;
    words[at] = this.outputs.count;
    words[at + 1] = kind;
    words[at + 2] = messageOffset;
    words[at + 3] = messageLength;
    this.lastOutput = -1;
    this.markData = this.dataEnd;
    this.markOutputs = this.outputs.count;
    this.markHeaders = this.headers.count;
    this.markTopics = this.topicNames.length;
  }

  /** Forgets what the current message wrote. */
  rollBack() {
    this.dataEnd = this.markData;
    this.outputs.count = this.markOutputs;
    this.headers.count = this.markHeaders;
    while (this.topicNames.length > this.markTopics) {
      this.topicIndex.delete(this.topicNames.pop());
      this.topicSpans.length -= 2;
    }
  }

  /** The encoded answer. It stays valid until the next call of `begin`. */
  finish() {
    const topicCount = this.topicNames.length;
    const outcomes = this.outcomes.bytes();
    const outputs = this.outputs.bytes();
    const headers = this.headers.bytes();
    const topicsAt = this.dataEnd;
    const outcomesAt = topicsAt + topicCount * TOPIC_LEN;
    const outputsAt = outcomesAt + outcomes.length;
    const headersAt = outputsAt + outputs.length;
    const end = headersAt + headers.length;
    this.buffer = grown(this.buffer, this.dataEnd, end);
    const buffer = this.buffer;
    const view = new DataView(buffer.buffer, 0, end);
    for (let index = 0; index < topicCount; index++) {
      view.setUint32(topicsAt + index * TOPIC_LEN, this.topicSpans[index * 2], true);
      view.setUint32(topicsAt + index * TOPIC_LEN + 4, this.topicSpans[index * 2 + 1], true);
    }
    buffer.set(outcomes, outcomesAt);
    buffer.set(outputs, outputsAt);
    buffer.set(headers, headersAt);
    view.setUint32(0, ANSWER_MAGIC, true);
    view.setUint32(4, this.outcomes.count, true);
    view.setUint32(8, topicCount, true);
    view.setUint32(12, this.outputs.count, true);
    view.setUint32(16, this.headers.count, true);
    view.setUint32(20, topicsAt, true);
    view.setUint32(24, outcomesAt, true);
    view.setUint32(28, outputsAt, true);
    view.setUint32(32, headersAt, true);
    view.setUint32(36, HEADER_LEN, true);
    return buffer.subarray(0, end);
  }
}

export { BATCH_MAGIC, ANSWER_MAGIC };
