import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runHandler, text } from '../../runnel/testing.js';
import { Uppercase, asciiUppercase } from './handler.js';

test('upper-cases the value and keeps key and headers, to the default topic', () => {
  const [outcome] = runHandler(Uppercase, [
    { value: 'hello, world 42', key: 'k', headers: [['h', '1'], ['h', '2']] },
  ]);
  const [output] = outcome.outputs;
  assert.equal(text(output.value), 'HELLO, WORLD 42');
  assert.equal(text(output.key), 'k');
  assert.deepEqual(output.headers.map(([name, value]) => [name, text(value)]), [['h', '1'], ['h', '2']]);
  assert.equal(output.topic, null);
});

test('keeps no key apart from an empty key', () => {
  const outcomes = runHandler(Uppercase, [{ value: 'a' }, { value: 'b', key: '' }]);
  assert.equal(outcomes[0].outputs[0].key, undefined);
  assert.equal(text(outcomes[1].outputs[0].key), '');
});

test('only ASCII letters change, whatever the bytes', () => {
  const cases = [
    ['ünïcode straße', 'üNïCODE STRAßE'],
    ['', ''],
    ['abc\u00ff', 'ABC\u00ff'],
  ];
  for (const [input, expected] of cases) {
    const bytes = new TextEncoder().encode(input);
    asciiUppercase(bytes);
    assert.equal(new TextDecoder().decode(bytes), expected);
  }
  // Not UTF-8 at all: bytes other than a-z stay as they are.
  const raw = Uint8Array.of(0x61, 0xff, 0x7a, 0xc3, 0x7b, 0x60, 0xe9);
  asciiUppercase(raw);
  assert.deepEqual([...raw], [0x41, 0xff, 0x5a, 0xc3, 0x7b, 0x60, 0xe9]);
});

test('the handler upper-cases only ASCII letters of values that are not plain ASCII too', () => {
  const raw = Uint8Array.of(0x61, 0xff, 0x7a);
  const outcomes = runHandler(Uppercase, [{ value: 'straße', key: 'k' }, { value: raw }]);
  assert.equal(text(outcomes[0].outputs[0].value), 'STRAßE');
  assert.equal(text(outcomes[0].outputs[0].key), 'k');
  assert.deepEqual([...outcomes[1].outputs[0].value], [0x41, 0xff, 0x5a]);
});
