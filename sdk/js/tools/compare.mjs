// Runs two builds of the same plugin (say the Rust example and the JavaScript one) on the same
// batches and prints where their answers differ. Both components are transpiled with jco and run
// in Node, so no Runnel host is needed:
//
//   node --import ./runnel/register.js tools/compare.mjs JCO_BIN A.wasm B.wasm [name=value ...]
//
// Exits 1 when the answers differ in content (their byte layouts may differ).

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { decodeAnswer, encodeBatch } from '../runnel/testing.js';

const [jco, first, second, ...settings] = process.argv.slice(2);
const config = settings.map((setting) => setting.split(/=(.*)/s).slice(0, 2));

async function load(wasm) {
  // Beside the toolchain's node_modules, where the transpiled code finds its WASI shims.
  const out = mkdtempSync(join(dirname(dirname(dirname(jco))), 'compare-'));
  execFileSync(jco, ['transpile', wasm, '-o', out, '--name', 'plugin', '--no-typescript', '--quiet']);
  writeFileSync(join(out, 'package.json'), '{"type":"module"}');
  const { handler } = await import(join(out, 'plugin.js'));
  rmSync(out, { recursive: true });
  return handler;
}

const bytes = (...values) => Uint8Array.of(...values);
// Every kind of input the examples treat differently.
const batches = [
  [
    { value: 'hello, world', key: 'k1', headers: [['trace', 'abc'], ['trace', 'def']], topic: 'orders', partition: 3, offset: 42, timestamp: 1_700_000_000_000 },
    { value: '', key: '' },
    { value: 'ünïcode straße', headers: [['x', '']] },
    { value: bytes(0x61, 0xff, 0x7a, 0xc3, 0x7b), key: bytes(0xfe) },
    { value: '{"type":"orders","n":1}', key: 'k1' },
    { value: '{ "type" : "refunds" ,\n "n": 1.50 }', key: 'k2', headers: [['h', '1']] },
    { value: '{"n":1}', key: 'k1' },
    { value: '{"type":3}' },
    { value: '{"type":""}' },
    { value: '[1,2]' },
    { value: 'null' },
    { value: '"text"' },
    { value: 'not json' },
    { value: '{"test":"drop me","type":"orders"}' },
    { value: '{"test":{"b":[1,2],"a":null},"type":"orders"}' },
    { value: '{"test":true}' },
  ],
  Array.from({ length: 100 }, (_, index) => ({
    value: `{"type":"t${index % 3}","i":${index},"text":"${'x'.repeat(index)}"}`,
    key: index % 4 === 0 ? undefined : `key-${index % 5}`,
  })),
];

const [a, b] = [await load(first), await load(second)];
const init = (handler) => {
  try {
    handler.init(config);
    return 'ok';
  } catch (refusal) {
    return `refused: ${refusal?.payload ?? refusal}`;
  }
};
const [initA, initB] = [init(a), init(b)];
console.log(`init: ${initA} | ${initB}`);
let same = (initA === 'ok') === (initB === 'ok');
if (initA === 'ok' && initB === 'ok') {
  for (const messages of batches) {
    const batch = encodeBatch(messages, 'compare');
    const [outcomesA, outcomesB] = [a, b].map((h) => decodeAnswer(h.handle(batch), messages.length));
    outcomesA.forEach((outcomeA, index) => {
      const outcomeB = outcomesB[index];
      // Failure texts may be worded differently (JSON parsers word their errors differently):
      // compare kinds, and texts where neither comes from a parser.
      const comparable = (outcome) =>
        outcome.failure
          ? { kind: outcome.failure.kind, text: outcome.failure.message.startsWith('value is not valid JSON') ? 'JSON error' : outcome.failure.message }
          : outcome;
      if (!isDeepStrictEqual(comparable(outcomeA), comparable(outcomeB))) {
        same = false;
        console.log(`message ${index}:`, JSON.stringify(messages[index]?.value ?? ''));
        console.log('  A:', JSON.stringify(outcomeA, (_, v) => (v instanceof Uint8Array ? [...v] : v)));
        console.log('  B:', JSON.stringify(outcomeB, (_, v) => (v instanceof Uint8Array ? [...v] : v)));
      }
    });
    console.log(`batch of ${messages.length}: compared`);
  }
}
console.log(same ? 'same content' : 'DIFFERENT');
process.exit(same ? 0 : 1);
