// Types of testing.js: helpers for testing handlers under Node's test runner.

import type { BytesLike, HandlerClass, HandlerExport, HandlerObject } from './index.js';

export interface TestMessage {
  value: BytesLike;
  /** Left out: no key. */
  key?: BytesLike | null;
  headers?: Array<[string, BytesLike]>;
  topic?: string;
  partition?: number;
  offset?: number;
  timestamp?: number;
}

export interface TestOutput {
  /** null for the pipeline's default output topic. */
  topic: string | null;
  key: Uint8Array | undefined;
  value: Uint8Array;
  headers: Array<[string, Uint8Array]>;
}

export type TestOutcome =
  | { outputs: TestOutput[] }
  | { failure: { kind: 'transient' | 'permanent'; message: string } };

type Settings = Record<string, string> | Array<[string, string]>;

export declare function encodeBatch(messages: TestMessage[], source?: string): Uint8Array;
export declare function decodeAnswer(answer: Uint8Array, count: number): TestOutcome[];
export declare function runHandler(
  definition: HandlerClass | HandlerObject,
  messages: TestMessage[],
  settings?: Settings,
): TestOutcome[];
export declare function initOrThrow(exported: HandlerExport, settings?: Settings): void;
export declare function text(bytes: Uint8Array): string;
export declare function text(bytes: Uint8Array | undefined): string | undefined;
export declare function loggedLines(): Array<[string, string]>;
