// Helpers for testing handlers under Node's test runner (`node --import ./runnel/register.js
// --test`): encode a batch the way the host does, run a handler over it, and read its answer back
// with every check the host makes.

import {
  ANSWER_MAGIC,
  BATCH_MAGIC,
  DecodeError,
  HEADER_LEN,
  HEADER_RECORD_LEN,
  MESSAGE_LEN,
  NO_KEY,
  OUTCOME_LEN,
  OUTPUT_LEN,
  PERMANENT,
  SUCCEEDED,
  TOPIC_LEN,
  TRANSIENT,
  checkHeaderRange,
  checkKeySpan,
  checkSpan,
  checkTable,
  decodeText,
  readPreamble,
  writeI64,
} from './encoding.js';
import { exportHandler } from './index.js';

const utf8 = new TextEncoder();

function bytesOf(value) {
  return typeof value === 'string' ? utf8.encode(value) : value;
}

/**
 * Encodes a batch as the host does. Each message is `{ value, key?, headers?, topic?,
 * partition?, offset?, timestamp? }`; values, keys and header values are strings or bytes, and
 * a key left out means no key.
 */
export function encodeBatch(messages, source = 'test-source') {
  const data = [];
  let dataLength = 0;
  const push = (value) => {
    const bytes = bytesOf(value);
    data.push(bytes);
    dataLength += bytes.length;
    return [dataLength - bytes.length, bytes.length];
  };
  const topics = new Map();
  const headerRecords = [];
  const messageRecords = [];
  const sourceSpan = push(source);
  for (const message of messages) {
    const topic = message.topic ?? 'in';
    if (!topics.has(topic)) topics.set(topic, push(topic));
    const key = message.key === undefined || message.key === null ? [NO_KEY, 0] : push(message.key);
    const value = push(message.value);
    const firstHeader = headerRecords.length;
    for (const [name, headerValue] of message.headers ?? []) {
      headerRecords.push([...push(name), ...push(headerValue)]);
    }
    messageRecords.push({
      offset: message.offset ?? -1,
      timestamp: message.timestamp ?? -1,
      partition: message.partition ?? -1,
      topic: [...topics.keys()].indexOf(topic),
      key,
      value,
      firstHeader,
      headerCount: headerRecords.length - firstHeader,
    });
  }

  const topicsAt = HEADER_LEN + dataLength;
  const messagesAt = topicsAt + topics.size * TOPIC_LEN;
  const headersAt = messagesAt + messageRecords.length * MESSAGE_LEN;
  const buffer = new Uint8Array(headersAt + headerRecords.length * HEADER_RECORD_LEN);
  const view = new DataView(buffer.buffer);
  let at = HEADER_LEN;
  for (const bytes of data) {
    buffer.set(bytes, at);
    at += bytes.length;
  }
  const u32s = (start, values) => values.forEach((v, i) => view.setUint32(start + i * 4, v, true));
  u32s(0, [BATCH_MAGIC, messageRecords.length, topics.size, headerRecords.length]);
  u32s(16, [topicsAt, messagesAt, headersAt, HEADER_LEN, ...sourceSpan]);
  [...topics.values()].forEach((span, index) => u32s(topicsAt + index * TOPIC_LEN, span));
  messageRecords.forEach((record, index) => {
    const start = messagesAt + index * MESSAGE_LEN;
    writeI64(view, start, record.offset);
    writeI64(view, start + 8, record.timestamp);
    view.setInt32(start + 16, record.partition, true);
    u32s(start + 20, [record.topic, ...record.key, ...record.value]);
    u32s(start + 40, [record.firstHeader, record.headerCount]);
  });
  headerRecords.forEach((record, index) => u32s(headersAt + index * HEADER_RECORD_LEN, record));
  return buffer;
}

/**
 * Reads an answer to a batch of `count` messages, checking it as the host does, into one
 * outcome per message: `{ outputs: [{ topic, key, value, headers }] }` (topic null for the
 * default topic, key undefined for none, bytes as Uint8Array) or `{ failure: { kind, message
 * } }`. Throws a DecodeError for an answer the host would refuse.
 */
export function decodeAnswer(buffer, count) {
  const view = readPreamble(buffer, ANSWER_MAGIC, 'the answer');
  const u32 = (at) => view.getUint32(at, true);
  if (u32(4) !== count) {
    throw new DecodeError(`the answer has ${u32(4)} outcomes for a batch of ${count} messages`);
  }
  const [topicCount, outputCount, headerCount] = [u32(8), u32(12), u32(16)];
  const [topicsAt, outcomesAt, outputsAt, headersAt, dataAt] = [u32(20), u32(24), u32(28), u32(32), u32(36)];
  checkTable(buffer, topicsAt, topicCount, TOPIC_LEN, 'topics');
  checkTable(buffer, outcomesAt, count, OUTCOME_LEN, 'outcomes');
  checkTable(buffer, outputsAt, outputCount, OUTPUT_LEN, 'outputs');
  checkTable(buffer, headersAt, headerCount, HEADER_RECORD_LEN, 'headers');
  if (dataAt > buffer.length) throw new DecodeError(`the data area starts past the buffer`);
  const dataLength = buffer.length - dataAt;
  const bytes = (at) => buffer.slice(dataAt + u32(at), dataAt + u32(at) + u32(at + 4));
  const span = (at, what) => checkSpan(u32(at), u32(at + 4), dataLength, what);
  const text = (at, what) => {
    span(at, what);
    return decodeText(bytes(at), what);
  };

  const topics = [];
  for (let index = 0; index < topicCount; index++) {
    topics.push(text(topicsAt + index * TOPIC_LEN, `topic ${index}`));
  }
  const headers = [];
  for (let index = 0; index < headerCount; index++) {
    const at = headersAt + index * HEADER_RECORD_LEN;
    span(at + 8, `the value of header ${index}`);
    headers.push([text(at, `the name of header ${index}`), bytes(at + 8)]);
  }
  const outputs = [];
  for (let index = 0; index < outputCount; index++) {
    const at = outputsAt + index * OUTPUT_LEN;
    const topic = u32(at);
    if (topic > topicCount) {
      throw new DecodeError(`output ${index} names topic ${topic} of ${topicCount}`);
    }
    checkKeySpan(u32(at + 4), u32(at + 8), dataLength, `the key of output ${index}`);
    span(at + 12, `the value of output ${index}`);
    checkHeaderRange(u32(at + 20), u32(at + 24), headerCount, `output ${index}`);
    if (u32(at + 28) !== 0) throw new DecodeError(`output ${index} has a non-zero reserved field`);
    outputs.push({
      topic: topic === 0 ? null : topics[topic - 1],
      key: u32(at + 4) === NO_KEY ? undefined : bytes(at + 4),
      value: bytes(at + 12),
      headers: headers.slice(u32(at + 20), u32(at + 20) + u32(at + 24)),
    });
  }

  const outcomes = [];
  let previousEnd = 0;
  for (let index = 0; index < count; index++) {
    const at = outcomesAt + index * OUTCOME_LEN;
    const end = u32(at);
    const kind = u32(at + 4);
    if (end < previousEnd || end > outputCount) {
      throw new DecodeError(`outcome ${index} ends its outputs at ${end}, after ${previousEnd} of ${outputCount}`);
    }
    const message = text(at + 8, `the failure message of message ${index}`);
    if (kind === SUCCEEDED) {
      outcomes.push({ outputs: outputs.slice(previousEnd, end) });
    } else if (kind === TRANSIENT || kind === PERMANENT) {
      if (end !== previousEnd) throw new DecodeError(`failed message ${index} has outputs`);
      outcomes.push({ failure: { kind: kind === TRANSIENT ? 'transient' : 'permanent', message } });
    } else {
      throw new DecodeError(`outcome ${index} has kind ${kind}`);
    }
    previousEnd = end;
  }
  if (previousEnd !== outputCount) {
    throw new DecodeError(`the outcomes end at output ${previousEnd} of ${outputCount}`);
  }
  return outcomes;
}

/**
 * Runs a handler definition (what the plugin passes to `exportHandler`) as the host would:
 * `init` with `settings` (an object or `[name, value]` pairs), then one batch of `messages`
 * (see `encodeBatch`). Returns the decoded outcomes (see `decodeAnswer`); an init error is
 * thrown as an Error with the message the host would show.
 */
export function runHandler(definition, messages, settings = []) {
  const exported = exportHandler(definition);
  initOrThrow(exported, settings);
  return decodeAnswer(exported.handle(encodeBatch(messages)), messages.length);
}

/** Calls an exported handler's `init`, turning its refusal into a thrown Error. */
export function initOrThrow(exported, settings = []) {
  const entries = Array.isArray(settings) ? settings : Object.entries(settings);
  try {
    exported.init(entries);
  } catch (refusal) {
    throw new Error(String(refusal));
  }
}

/** A Uint8Array or undefined as text, for readable assertions. */
export function text(bytes) {
  return bytes === undefined ? undefined : new TextDecoder().decode(bytes);
}

/** Every `[level, message]` the code under test logged, oldest first. */
export function loggedLines() {
  return (globalThis.__runnelLoggedLines ??= []);
}
