import assert from 'node:assert/strict';
import { test } from 'node:test';

import { runHandler, text } from '../../runnel/testing.js';
import { Thrower } from './handler.js';

test('a throw fails only its message, permanently, with the exception text', () => {
  const outcomes = runHandler(Thrower, [{ value: 'before', key: 'k' }, { value: 'throw' }, { value: 'after' }]);
  assert.equal(text(outcomes[0].outputs[0].value), 'BEFORE');
  assert.equal(text(outcomes[0].outputs[0].key), 'k');
  assert.deepEqual(outcomes[1].failure, { kind: 'permanent', message: 'Error: thrower: throw requested' });
  assert.equal(text(outcomes[2].outputs[0].value), 'AFTER');
});
