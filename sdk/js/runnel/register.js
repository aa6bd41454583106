// Lets Node load a plugin outside a Runnel host, for tests: `node --import ./runnel/register.js
// --test`. The host provides the `runnel:plugin/log` import; here a stand-in keeps each line in
// memory, where `loggedLines()` of testing.js reads them.

import { register } from 'node:module';

const logStandIn = `
export function log(level, message) {
  (globalThis.__runnelLoggedLines ??= []).push([level, message]);
}`;

const hooks = `
export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'runnel:plugin/log' || specifier.startsWith('runnel:plugin/log@')) {
    return {
      url: 'data:text/javascript,' + encodeURIComponent(${JSON.stringify(logStandIn)}),
      shortCircuit: true,
    };
  }
  return nextResolve(specifier, context);
}`;

register(`data:text/javascript,${encodeURIComponent(hooks)}`);
