// {{name}}: a Runnel message handler. It upper-cases the ASCII letters of every value and sends
// it on with its key and headers to the pipeline's default output topic.

import { exportHandler } from './runnel/index.js';
import type { Message, Outputs } from './runnel/index.js';

export class Handler {
  /** Called once per message; sends zero or more outputs, or throws (or returns) a Failure. */
  handle(message: Message, out: Outputs): void {
    // Sending the value and editing the copy in place is the cheapest way to transform it.
    out.send(message.value).editValue(asciiUppercase).key(message.key).headers(message.headers);
  }
}

/**
 * Upper-cases the ASCII letters of `bytes` in place. For all-ASCII text the engine's built-in
 * decoder, `toUpperCase` and encoder are much faster than a loop over the bytes.
 */
function asciiUppercase(bytes: Uint8Array): void {
  const text = new TextDecoder().decode(bytes);
  if (text.length === bytes.length && text.indexOf('\uFFFD') === -1) {
    new TextEncoder().encodeInto(text.toUpperCase(), bytes);
    return;
  }
  for (let index = 0; index < bytes.length; index++) {
    if (bytes[index] >= 0x61 && bytes[index] <= 0x7a) bytes[index] -= 0x20;
  }
}

export const handler = exportHandler(Handler);
