// The SDK as a handler sees it: configuration, messages, outputs, failures and exceptions,
// logging. Every answer is read back with the host's checks (testing.js).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Config, Failure, exportHandler, log } from '../runnel/index.js';
import { decodeAnswer, encodeBatch, initOrThrow, loggedLines, runHandler, text } from '../runnel/testing.js';

/** Outcomes with every byte array shown as text. */
function readable(outcomes) {
  return JSON.parse(
    JSON.stringify(outcomes, (_, value) => (value instanceof Uint8Array ? text(value) : value)),
  );
}

describe('Config', () => {
  test('the last repeated setting wins', () => {
    const config = new Config([['a', '1'], ['b', '2'], ['a', '3']]);
    assert.equal(config.get('a'), '3');
    assert.equal(config.get('b'), '2');
    assert.equal(config.get('c'), undefined);
  });

  test('a missing required setting is named, in the Rust SDK words', () => {
    assert.throws(() => new Config().require('route_field'), {
      message: "missing required setting `route_field`: add it to this plugin's config",
    });
  });
});

class Prefixer {
  static init(config) {
    return new Prefixer(config.require('prefix'));
  }

  constructor(prefix) {
    this.prefix = prefix;
  }

  handle(message, out) {
    out.send(this.prefix + text(message.value));
  }
}

describe('init', () => {
  test('builds the handler every batch uses', () => {
    assert.deepEqual(readable(runHandler(Prefixer, [{ value: 'hi' }], { prefix: '> ' })), [
      { outputs: [{ topic: null, value: '> hi', headers: [] }] },
    ]);
  });

  test("a refusal carries the error's message", () => {
    assert.throws(() => runHandler(Prefixer, [], {}), { message: /missing required setting `prefix`/ });
  });

  test('a failed init leaves no handler behind', () => {
    const exported = exportHandler(Prefixer);
    initOrThrow(exported, { prefix: 'old' });
    assert.throws(() => initOrThrow(exported, {}));
    const [outcome] = decodeAnswer(exported.handle(encodeBatch([{ value: 'hi' }])), 1);
    assert.equal(outcome.failure.kind, 'permanent');
    assert.match(outcome.failure.message, /before init/);
  });

  test('a plain object handler works, with or without init', () => {
    const seen = [];
    const definition = {
      init: (config) => seen.push(config.get('x')),
      handle: (message, out) => void out.send(message.value),
    };
    assert.equal(runHandler(definition, [{ value: 'a' }], { x: '1' })[0].outputs.length, 1);
    assert.deepEqual(seen, ['1']);
  });
});

describe('messages', () => {
  test('every field reaches the handler', () => {
    const seen = [];
    runHandler(
      { handle: (message) => void seen.push(message) && undefined },
      [
        { value: 'v', key: 'k', topic: 'orders', partition: 3, offset: 42, timestamp: 1_700_000_000_000, headers: [['h', '1'], ['h', '2'], ['other', '']] },
        { value: '', key: '', topic: 'refunds' },
        { value: 'x' },
      ],
    );
    // The views are only valid during `handle`; this test reads them while the batch is alive.
    const [first, second, third] = seen;
    assert.equal(text(first.key), 'k');
    assert.equal(text(first.value), 'v');
    assert.equal(first.topic, 'orders');
    assert.equal(first.partition, 3);
    assert.equal(first.offset, 42);
    assert.equal(first.timestamp, 1_700_000_000_000);
    assert.equal(first.source, 'test-source');
    assert.deepEqual([...first.headers].map(([n, v]) => [n, text(v)]), [['h', '1'], ['h', '2'], ['other', '']]);
    assert.equal(text(first.header('h')), '2');
    assert.equal(text(first.header('other')), '');
    assert.equal(first.header('H'), undefined);
    assert.equal(text(second.key), '', 'an empty key is a key');
    assert.equal(third.key, undefined, 'no key');
    assert.equal(third.timestamp, undefined);
    assert.equal(third.offset, -1);
    assert.equal(third.partition, -1);
    assert.equal(third.headers.length, 0);
  });
});

describe('outputs', () => {
  test('value, key, headers and topic, as bytes or strings', () => {
    const definition = {
      handle(message, out) {
        out.send(message.value).key(message.key).headers(message.headers).header('added', 'yes');
        out.send('copy').topic('elsewhere').key('').headers([['n', Uint8Array.of(0xff)]]);
        out.send(Uint8Array.of(1, 2)).topic('elsewhere');
      },
    };
    const [outcome] = runHandler(definition, [{ value: 'v', key: 'k', headers: [['h', '1'], ['h', '2']] }]);
    const [first, second, third] = outcome.outputs;
    assert.deepEqual(readable([first]), [
      { topic: null, key: 'k', value: 'v', headers: [['h', '1'], ['h', '2'], ['added', 'yes']] },
    ]);
    assert.equal(second.topic, 'elsewhere');
    assert.equal(text(second.key), '');
    assert.deepEqual([...second.headers[0][1]], [0xff]);
    assert.equal(third.topic, 'elsewhere');
    assert.equal(third.key, undefined);
    assert.deepEqual([...third.value], [1, 2]);
  });

  test('editValue changes the copy, not the input', () => {
    let input;
    const definition = {
      handle(message, out) {
        input = message.value;
        out.send(message.value).editValue((value) => value.fill(0x2a));
        assert.equal(text(input), 'abc');
      },
    };
    assert.equal(text(runHandler(definition, [{ value: 'abc' }])[0].outputs[0].value), '***');
  });

  test('a message may send nothing, or many outputs', () => {
    const definition = {
      handle(message, out) {
        for (let index = 0; index < Number(text(message.value)); index++) out.send(String(index));
      },
    };
    const outcomes = runHandler(definition, [{ value: '0' }, { value: '3' }, { value: '1' }]);
    assert.deepEqual(outcomes.map((outcome) => outcome.outputs.length), [0, 3, 1]);
  });

  test('a large batch grows the buffers', () => {
    const big = 'x'.repeat(100_000);
    const messages = Array.from({ length: 50 }, (_, index) => ({ value: big, key: String(index) }));
    const definition = { handle: (message, out) => void out.send(message.value).header('h', big).topic(`t${message.offset % 3}`) };
    const outcomes = runHandler(definition, messages);
    assert.equal(outcomes.length, 50);
    assert.ok(outcomes.every((outcome) => outcome.outputs[0].value.length === 100_000));
  });
});

describe('failures', () => {
  const failing = {
    handle(message, out) {
      out.send('sent before failing').topic('gone');
      switch (text(message.value)) {
        case 'transient':
          throw Failure.transient('database down');
        case 'permanent':
          return Failure.permanent('not JSON');
        case 'error':
          throw new TypeError('x is not a function');
        case 'string':
          throw 'plain string';
        case 'promise':
          return Promise.resolve();
      }
    },
  };

  test('a failed message has no outputs, and its neighbours keep theirs', () => {
    const outcomes = runHandler(failing, ['ok', 'transient', 'ok', 'permanent', 'error', 'string', 'promise'].map((value) => ({ value })));
    assert.deepEqual(readable(outcomes), [
      { outputs: [{ topic: 'gone', value: 'sent before failing', headers: [] }] },
      { failure: { kind: 'transient', message: 'database down' } },
      { outputs: [{ topic: 'gone', value: 'sent before failing', headers: [] }] },
      { failure: { kind: 'permanent', message: 'not JSON' } },
      { failure: { kind: 'permanent', message: 'TypeError: x is not a function' } },
      { failure: { kind: 'permanent', message: 'plain string' } },
      { failure: { kind: 'permanent', message: 'handle returned a promise: handlers must be synchronous' } },
    ]);
  });

  test('Failure reads like the Rust one', () => {
    assert.equal(String(Failure.transient('database down')), 'transient failure: database down');
    assert.equal(Failure.permanent('x').kind, 'permanent');
    assert.ok(Failure.permanent('x') instanceof Error);
  });

  test('a malformed batch fails every message it claims', () => {
    const exported = exportHandler(failing);
    initOrThrow(exported);
    const batch = encodeBatch([{ value: 'a' }, { value: 'b' }]);
    batch[0] = 0; // no longer "RNB1"
    const outcomes = decodeAnswer(exported.handle(batch), 2);
    assert.equal(outcomes.length, 2);
    for (const outcome of outcomes) {
      assert.equal(outcome.failure.kind, 'permanent');
      assert.match(outcome.failure.message, /malformed batch \(the batch does not start with "RNB1"/);
    }
  });
});

test('log writes through the host import, a function per level', () => {
  const before = loggedLines().length;
  for (const level of ['trace', 'debug', 'info', 'warn', 'error']) log[level](`at ${level}`);
  assert.deepEqual(loggedLines().slice(before), [
    ['trace', 'at trace'],
    ['debug', 'at debug'],
    ['info', 'at info'],
    ['warn', 'at warn'],
    ['error', 'at error'],
  ]);
});

test('one instance answers batch after batch, of growing and shrinking sizes', () => {
  const exported = exportHandler({ handle: (message, out) => void out.send(message.value).headers(message.headers) });
  initOrThrow(exported);
  for (const size of [1, 30, 2, 100, 0, 5]) {
    const messages = Array.from({ length: size }, (_, index) => ({
      value: `v${size}-${index}`,
      headers: index % 2 ? [['h', String(index)]] : [],
      topic: `t${index % 3}`,
    }));
    const outcomes = decodeAnswer(exported.handle(encodeBatch(messages)), size);
    assert.deepEqual(
      outcomes.map((outcome) => [text(outcome.outputs[0].value), outcome.outputs[0].headers.length]),
      messages.map((message, index) => [`v${size}-${index}`, index % 2]),
    );
  }
});
