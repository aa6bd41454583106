// The SDK's reader and writer against wit/encoding-vectors.json, and the reader against
// malformed batches.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { BatchView, OutcomesWriter, PERMANENT, SUCCEEDED, TRANSIENT } from '../runnel/encoding.js';
import { Headers, Message } from '../runnel/index.js';
import { decodeAnswer, encodeBatch, text } from '../runnel/testing.js';

const vectors = JSON.parse(
  readFileSync(new URL('../../../wit/encoding-vectors.json', import.meta.url), 'utf8'),
);

function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/** A message's content in the vectors' form. */
function content(message) {
  return {
    headers: [...message.headers].map(([name, value]) => [name, text(value)]),
    key: message.key === undefined ? null : text(message.key),
    offset: message.offset,
    partition: message.partition,
    timestamp: message.timestamp ?? null,
    topic: message.topic,
    value: text(message.value),
  };
}

describe('every batch vector decodes to its messages', () => {
  for (const vector of vectors.batches) {
    test(vector.name, () => {
      const batch = new BatchView(fromHex(vector.hex));
      assert.equal(batch.source, vector.source);
      assert.equal(batch.count, vector.messages.length);
      const messages = vector.messages.map((_, index) => content(new Message(batch, index)));
      assert.deepEqual(messages, vector.messages);
    });
  }
});

const kinds = { transient: TRANSIENT, permanent: PERMANENT };

/** Writes the vector's outcomes with the SDK's writer. */
function writeAnswer(outcomes) {
  const writer = new OutcomesWriter();
  writer.begin(outcomes.length, 0);
  for (const outcome of outcomes) {
    if (outcome.failure) {
      // Outputs sent before a failure must vanish from the answer.
      writer.send('discarded');
      writer.setTopic('discarded-topic');
      writer.finishMessage(kinds[outcome.failure.kind], outcome.failure.message);
      continue;
    }
    for (const output of outcome.outputs) {
      writer.send(output.value);
      writer.setKey(output.key);
      for (const [name, value] of output.headers) writer.addHeader(name, value);
      if (output.topic !== null) writer.setTopic(output.topic);
    }
    writer.finishMessage(SUCCEEDED);
  }
  return writer.finish();
}

/** An answer's outcomes in the vectors' form. */
function answerContent(outcomes) {
  return outcomes.map((outcome) =>
    outcome.failure
      ? outcome
      : {
          outputs: outcome.outputs.map((output) => ({
            headers: output.headers.map(([name, value]) => [name, text(value)]),
            key: output.key === undefined ? null : text(output.key),
            topic: output.topic,
            value: text(output.value),
          })),
        },
  );
}

describe('answer vectors', () => {
  for (const vector of vectors.answers) {
    test(`the vector decodes to its outcomes: ${vector.name}`, () => {
      const outcomes = decodeAnswer(fromHex(vector.hex), vector.outcomes.length);
      assert.deepEqual(answerContent(outcomes), vector.outcomes);
    });

    test(`the SDK's writer encodes the same content: ${vector.name}`, () => {
      const answer = writeAnswer(vector.outcomes);
      assert.deepEqual(answerContent(decodeAnswer(answer, vector.outcomes.length)), vector.outcomes);
    });
  }

  test('a writer reused for another batch starts afresh', () => {
    const writer = new OutcomesWriter();
    writer.begin(1, 0);
    writer.send('first');
    writer.setTopic('a');
    writer.finishMessage(SUCCEEDED);
    writer.finish();
    writer.begin(1, 0);
    writer.send('second');
    writer.setTopic('b');
    writer.finishMessage(SUCCEEDED);
    const [outcome] = decodeAnswer(writer.finish(), 1);
    assert.equal(outcome.outputs.length, 1);
    assert.equal(outcome.outputs[0].topic, 'b');
    assert.equal(text(outcome.outputs[0].value), 'second');
  });
});

describe('malformed batches are rejected with a clear error', () => {
  const good = () =>
    encodeBatch([{ value: 'v', key: 'k', headers: [['h', '1']], topic: 't' }], 'src');
  const u32 = (bytes, at, value) => new DataView(bytes.buffer).setUint32(at, value, true);
  // Byte positions in `good()`: the header's table offsets, and the one message's record.
  const field = (bytes, at) => new DataView(bytes.buffer).getUint32(at, true);
  const messageAt = (bytes) => field(bytes, 20);
  const headerAt = (bytes) => field(bytes, 24);
  const topicAt = (bytes) => field(bytes, 16);

  const cases = [
    ['a buffer shorter than the header', () => good().subarray(0, 39), /shorter than its 40-byte header/],
    ['a bad magic', (b) => { b[3] = 0x32; return b; }, /does not start with "RNB1"/],
    ['a message table past the end', (b) => { u32(b, 4, 2); return b; }, /messages table \(2 records/],
    ['a header table past the end', (b) => { u32(b, 24, b.length); return b; }, /headers table/],
    ['a topic table past the end', (b) => { u32(b, 16, b.length - 4); return b; }, /topics table/],
    ['a data area past the end', (b) => { u32(b, 28, b.length + 1); return b; }, /data area starts at byte/],
    ['a value outside the data area', (b) => { u32(b, messageAt(b) + 36, 10_000); return b; }, /the value of message 0 .* runs past the \d+-byte data area/],
    ['a key outside the data area', (b) => { u32(b, messageAt(b) + 24, 10_000); return b; }, /the key of message 0/],
    ['no key with a length', (b) => { u32(b, messageAt(b) + 24, 0xffffffff); return b; }, /marks no key but has a length/],
    ['a topic index past the table', (b) => { u32(b, messageAt(b) + 20, 1); return b; }, /names topic 1 of 1/],
    ['headers past the header table', (b) => { u32(b, messageAt(b) + 44, 2); return b; }, /has headers 0\.\.2 but the header table has 1/],
    ['a source outside the data area', (b) => { u32(b, 36, 10_000); return b; }, /the source/],
    ['a topic name that is not UTF-8', (b) => { b[40 + field(b, topicAt(b))] = 0xff; return b; }, /topic 0 is not UTF-8/],
    ['a header name that is not UTF-8', (b) => { b[40 + field(b, headerAt(b))] = 0xc3; return b; }, /the name of header 0 is not UTF-8/],
    ['a source that is not UTF-8', (b) => { b[40] = 0xfe; return b; }, /the source is not UTF-8/],
  ];
  for (const [name, corrupt, error] of cases) {
    test(name, () => {
      assert.doesNotThrow(() => new BatchView(good()));
      assert.throws(() => new BatchView(corrupt(good())), { name: 'DecodeError', message: error });
    });
  }

  test('header values and message bytes need not be UTF-8', () => {
    const batch = new BatchView(
      encodeBatch([{ value: Uint8Array.of(0xff), key: Uint8Array.of(0xfe), headers: [['h', Uint8Array.of(0xc3)]] }]),
    );
    const message = new Message(batch, 0);
    assert.deepEqual([...message.value], [0xff]);
    assert.deepEqual([...message.key], [0xfe]);
    assert.ok(message.headers instanceof Headers);
    assert.deepEqual([...message.header('h')], [0xc3]);
  });
});
