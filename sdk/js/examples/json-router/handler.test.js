import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Config } from '../../runnel/index.js';
import { runHandler, text } from '../../runnel/testing.js';
import { JsonRouter } from './handler.js';

function router(settings) {
  return JsonRouter.init(new Config(settings));
}

/** The route of one record as the Rust tests spell it, or the failure's text. */
function route(router, json) {
  try {
    const topic = router.route(JSON.parse(json));
    if (typeof topic === 'symbol') return 'Drop';
    return topic === null ? 'DefaultTopic' : `Topic("${topic}")`;
  } catch (failure) {
    return `error: ${failure.message}`;
  }
}

test('init requires route_field', () => {
  assert.throws(() => router({}), { message: /`route_field`/ });
});

test('init requires the drop settings together', () => {
  assert.throws(() => router({ route_field: 'type', drop_field: 'test' }), { message: /set both or neither/ });
});

test('routes by field or to the default topic', () => {
  const r = router({ route_field: 'type' });
  assert.equal(route(r, '{"type":"orders"}'), 'Topic("orders")');
  assert.equal(route(r, '{"other":1}'), 'DefaultTopic');
  assert.equal(
    route(r, '{"type":3}'),
    'error: field `type` must be a non-empty string naming the target topic, found 3',
  );
  assert.match(route(r, '{"type":""}'), /^error: /);
  assert.equal(route(r, '[1]'), 'error: value is a JSON array, expected an object');
  assert.equal(route(r, 'null'), 'error: value is a JSON null, expected an object');
  assert.equal(route(r, '{"toString":1}'), 'DefaultTopic', 'only own fields count');
});

test('drops by string or JSON text', () => {
  const withDrop = (value) => router({ route_field: 'type', drop_field: 'test', drop_value: value });
  assert.equal(route(withDrop('yes'), '{"test":"yes"}'), 'Drop');
  assert.equal(route(withDrop('yes'), '{"test":"no"}'), 'DefaultTopic');
  assert.equal(route(withDrop('"yes"'), '{"test":"yes"}'), 'Drop');
  assert.equal(route(withDrop('true'), '{"test":true}'), 'Drop');
  assert.equal(route(withDrop('42'), '{"test":42,"type":"t"}'), 'Drop');
  assert.equal(route(withDrop('null'), '{"test":null}'), 'Drop');
  assert.equal(route(withDrop('null'), '{}'), 'DefaultTopic');
  assert.equal(route(withDrop('{"a": [1], "b": 2}'), '{"test":{"b":2,"a":[1]}}'), 'Drop');
  assert.equal(route(withDrop('{"a": [1]}'), '{"test":{"a":[1,2]}}'), 'DefaultTopic');
});

test('sends the original bytes with key and headers, and fails bad records permanently', () => {
  const value = '{ "type" : "orders",  "n": 1.50 }';
  const outcomes = runHandler(
    JsonRouter,
    [
      { value, key: 'k', headers: [['h', '1']] },
      { value: '{"n":1}' },
      { value: 'not json' },
      { value: Uint8Array.of(0x7b, 0xff, 0x7d) },
      { value: '\ufeff{}' },
      { value: '{"test":"x"}' },
    ],
    { route_field: 'type', drop_field: 'test', drop_value: 'x' },
  );
  const [first, second, notJson, notUtf8, bom, dropped] = outcomes;
  assert.equal(text(first.outputs[0].value), value, 'the bytes as they came, not re-serialized');
  assert.equal(first.outputs[0].topic, 'orders');
  assert.equal(text(first.outputs[0].key), 'k');
  assert.deepEqual(first.outputs[0].headers.map(([n, v]) => [n, text(v)]), [['h', '1']]);
  assert.equal(second.outputs[0].topic, null);
  for (const failed of [notJson, notUtf8, bom]) {
    assert.equal(failed.failure.kind, 'permanent');
    assert.match(failed.failure.message, /^value is not valid JSON: /);
  }
  assert.deepEqual(dropped, { outputs: [] });
});
