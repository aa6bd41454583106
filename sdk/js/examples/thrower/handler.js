// Throws an Error on the value `throw` and upper-cases (ASCII) every other value, keeping key
// and headers: the throwing handler that tests/throwing.rs runs in every language. The SDK
// catches the exception and fails only that message, permanently, with the exception's text.

import { exportHandler } from '../../runnel/index.js';

const decoder = new TextDecoder();

/** Upper-cases the ASCII letters of `bytes` in place. */
function asciiUppercase(bytes) {
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index];
    if (byte >= 0x61 && byte <= 0x7a) bytes[index] = byte - 0x20;
  }
}

export class Thrower {
  handle(message, out) {
    if (decoder.decode(message.value) === 'throw') {
      throw new Error('thrower: throw requested');
    }
    out.send(message.value).editValue(asciiUppercase).key(message.key).headers(message.headers);
  }
}

export const handler = exportHandler(Thrower);
