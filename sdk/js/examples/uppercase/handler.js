// Upper-cases every value (ASCII only), keeping key and headers, to the default topic.

import { exportHandler } from '../../runnel/index.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * Upper-cases the ASCII letters of `bytes` in place, leaving every other byte as it is.
 *
 * A loop over the bytes runs in the engine's interpreter at a few nanoseconds a byte; for a
 * value that is all ASCII, the engine's own (compiled) decoder, `toUpperCase` and encoder do the
 * same work several times faster, allocating two short strings.
 */
export function asciiUppercase(bytes) {
  const text = decoder.decode(bytes);
  // One character per byte means ASCII, or bytes that are not UTF-8, each decoded as U+FFFD.
  if (text.length === bytes.length && text.indexOf('\uFFFD') === -1) {
    encoder.encodeInto(text.toUpperCase(), bytes);
    return;
  }
  for (let index = 0; index < bytes.length; index++) {
    const byte = bytes[index];
    if (byte >= 0x61 && byte <= 0x7a) bytes[index] = byte - 0x20;
  }
}

export class Uppercase {
  handle(message, out) {
    // Sending the value and editing the copy in place saves building a new array per message.
    out.send(message.value).editValue(asciiUppercase).key(message.key).headers(message.headers);
  }
}

export const handler = exportHandler(Uppercase);
