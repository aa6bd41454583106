import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runHandler, text } from './runnel/testing.js';
import { Handler } from './handler.js';

test('upper-cases the value and keeps key and headers', () => {
  const [outcome] = runHandler(Handler, [{ value: 'hello, wörld', key: 'k', headers: [['h', '1']] }]);
  assert.ok('outputs' in outcome);
  const [output] = outcome.outputs;
  assert.equal(text(output.value), 'HELLO, WöRLD');
  assert.equal(text(output.key), 'k');
  assert.deepEqual(output.headers.map(([name, value]) => [name, text(value)]), [['h', '1']]);
  assert.equal(output.topic, null);
});
