// Counts the messages seen per key and sends each message on with its running count in a
// header: an example of a handler configured by `init` that keeps state across messages.
//
// Settings:
// - `header` (optional, default `count`): the name of the header that carries the count.
//
// The value is sent unchanged, with its key and headers, to the default topic. A message without
// a key is counted apart from one with an empty key, as Kafka tells them apart. Counts live in
// the plugin instance: each instance counts the messages it handled, from zero when it starts.

import { exportHandler } from '../../runnel/index.js';

export class Counter {
  static init(config) {
    const header = config.get('header') ?? 'count';
    if (header === '') {
      throw new Error('setting `header` must not be empty');
    }
    if (header.startsWith('runnel-')) {
      throw new Error(
        `setting \`header\` is \`${header}\`, but header names starting with \`runnel-\` are set by the host`,
      );
    }
    return new Counter(header);
  }

  constructor(header) {
    this.header = header;
    this.counts = new Map();
    // Counted apart from every key, as a message without a key is not one with an empty key.
    this.withoutKey = 0;
  }

  handle(message, out) {
    const key = message.key;
    const count = this.count(key);
    out.send(message.value).key(key).headers(message.headers).header(this.header, String(count));
  }

  /** The running count of `key` (bytes, or undefined for no key), this message included. */
  count(key) {
    if (key === undefined) return ++this.withoutKey;
    const name = mapKey(key);
    const count = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, count);
    return count;
  }
}

/**
 * `bytes` as a string with one character per byte: a Map compares strings by content, and
 * distinct keys, UTF-8 or not, stay distinct.
 */
function mapKey(bytes) {
  let name = '';
  // `apply` passes every byte as an argument; engines limit how many, so go in slices.
  for (let start = 0; start < bytes.length; start += 4096) {
    name += String.fromCharCode.apply(null, bytes.subarray(start, start + 4096));
  }
  return name;
}

export const handler = exportHandler(Counter);
