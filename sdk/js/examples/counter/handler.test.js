import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Config } from '../../runnel/index.js';
import { runHandler, text } from '../../runnel/testing.js';
import { Counter } from './handler.js';

test('counts each key apart, and no key apart from an empty key', () => {
  const counter = Counter.init(new Config());
  assert.equal(counter.header, 'count');
  const te = (s) => new TextEncoder().encode(s);
  assert.deepEqual(
    [te('a'), te('b'), te('a'), undefined, te(''), undefined, Uint8Array.of(0xff), Uint8Array.of(0xfe)].map((key) => counter.count(key)),
    [1, 1, 2, 1, 1, 2, 1, 1],
  );
});

test('sends the value on with key, headers and the count header', () => {
  const outcomes = runHandler(
    Counter,
    [
      { value: 'v1', key: 'k', headers: [['h', '1']] },
      { value: 'v2', key: 'k' },
      { value: 'v3' },
    ],
    { header: 'seen' },
  );
  const outputs = outcomes.map((outcome) => outcome.outputs[0]);
  assert.deepEqual(
    outputs.map((output) => [text(output.value), text(output.key), output.headers.map(([n, v]) => `${n}=${text(v)}`)]),
    [
      ['v1', 'k', ['h=1', 'seen=1']],
      ['v2', 'k', ['seen=2']],
      ['v3', undefined, ['seen=1']],
    ],
  );
});

test('refuses an empty or host header name', () => {
  assert.throws(() => runHandler(Counter, [], { header: '' }), { message: 'setting `header` must not be empty' });
  assert.throws(() => runHandler(Counter, [], { header: 'runnel-count' }), {
    message:
      'setting `header` is `runnel-count`, but header names starting with `runnel-` are set by the host',
  });
});
