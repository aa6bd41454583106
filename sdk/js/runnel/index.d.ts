// Types of the Runnel JavaScript SDK (index.js), so that a TypeScript handler type-checks.

/** Bytes as the SDK hands them out: views into the batch, valid until `handle` returns. */
export type Bytes = Uint8Array;

/** What a handler may send as a value, key or header value: bytes, or text sent as UTF-8. */
export type BytesLike = Uint8Array | string;

/** String settings from the pipeline's configuration of this plugin. */
export declare class Config implements Iterable<[string, string]> {
  /** `[name, value]` pairs in the order the host passed them, or an object of settings. */
  constructor(entries?: Array<[string, string]> | Record<string, string>);
  readonly entries: Array<[string, string]>;
  /** The value of setting `name`, or undefined; when a name is repeated the last value wins. */
  get(name: string): string | undefined;
  /** The value of setting `name`; throws an error that tells the user which setting to add. */
  require(name: string): string;
  [Symbol.iterator](): Iterator<[string, string]>;
}

export type FailureKind = 'transient' | 'permanent';

/**
 * The failure of one message: return it from `handle`, or throw it. Either way the outputs the
 * message sent are discarded.
 */
export declare class Failure extends Error {
  constructor(kind: FailureKind, message: string);
  readonly kind: FailureKind;
  /** A failure that retrying the same message cannot fix: the host dead-letters or skips it. */
  static permanent(message: string): Failure;
  /** A failure that a later retry of the same message may not hit: the host retries it. */
  static transient(message: string): Failure;
}

/** Logging into the host's log, tagged with the plugin's name; a function per level. */
export declare const log: {
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
};

/** The headers of one message in the producer's order; a name may repeat. */
export declare class Headers implements Iterable<[string, Bytes]> {
  private constructor();
  readonly length: number;
  name(index: number): string;
  value(index: number): Bytes;
  [Symbol.iterator](): Iterator<[string, Bytes]>;
}

/** One input message, read from the batch without copies. */
export declare class Message {
  private constructor();
  /** The key, or undefined when the message has no key (not the same as an empty key). */
  readonly key: Bytes | undefined;
  readonly value: Bytes;
  readonly headers: Headers;
  /** The value of the last header called `name` (case-sensitive), or undefined. */
  header(name: string): Bytes | undefined;
  /** The topic the message was read from. */
  readonly topic: string;
  /** The Kafka partition, or -1 for inputs without partitions. */
  readonly partition: number;
  /** The Kafka offset, or -1 for inputs without offsets. */
  readonly offset: number;
  /** Milliseconds since the Unix epoch, or undefined when the input does not know it. */
  readonly timestamp: number | undefined;
  /** The name of the pipeline input the message came from. */
  readonly source: string;
}

/** Sets the optional parts of the output that `Outputs.send` just appended. */
export declare class OutputBuilder {
  private constructor();
  /** Sets the key; undefined or null (the default) sends the output without a key. */
  key(key: BytesLike | undefined | null): this;
  /** Changes the value in place: `edit` gets the output's own bytes. */
  editValue(edit: (value: Bytes) => void): this;
  /** Adds a header; names may repeat. */
  header(name: string, value: BytesLike): this;
  /** Adds every header of `headers`: a message's `headers`, or any `[name, value]` pairs. */
  headers(headers: Headers | Iterable<readonly [string, BytesLike]>): this;
  /** Sends the output to `topic` instead of the pipeline's default output topic. */
  topic(topic: string): this;
}

/** Where a handler sends the outputs of the message it is handling. */
export declare class Outputs {
  private constructor();
  /** Sends `value` to the default topic, without key or headers; the builder changes that. */
  send(value: BytesLike): OutputBuilder;
}

/** A message handler: sends the outputs of one message at a time, or fails it. */
export interface Handler {
  handle(message: Message, out: Outputs): void | Failure;
}

/** A handler class: built by its static `init(config)` when it has one, else by `new`. */
export type HandlerClass =
  | { init(config: Config): Handler }
  | { new (): Handler };

/** A handler object, with an optional `init` that reads the configuration. */
export interface HandlerObject extends Handler {
  init?(config: Config): void;
}

/** What the plugin module exports under the name `handler`: the `runnel:plugin/handler` world export. */
export interface HandlerExport {
  init(settings: Array<[string, string]>): void;
  handle(batch: Uint8Array): Uint8Array;
}

/** Builds the `runnel:plugin/handler` export: `export const handler = exportHandler(MyHandler);` */
export declare function exportHandler(definition: HandlerClass | HandlerObject): HandlerExport;
