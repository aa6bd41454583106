// Type-checked by `build.sh --test` (tsc --noEmit): handlers written against the typings, as a
// TypeScript plugin would be.

import { Config, Failure, Message, Outputs, exportHandler, log } from '../runnel/index.js';
import { runHandler, text } from '../runnel/testing.js';

class Tagger {
  static init(config: Config): Tagger {
    return new Tagger(config.require('tag'), config.get('topic'));
  }

  private seen = 0;

  constructor(
    private readonly tag: string,
    private readonly topic: string | undefined,
  ) {}

  handle(message: Message, out: Outputs): void | Failure {
    if (message.value.length === 0) return Failure.permanent('empty value');
    this.seen += 1;
    const output = out
      .send(message.value)
      .key(message.key)
      .headers(message.headers)
      .header('tag', this.tag)
      .editValue((value: Uint8Array) => value.reverse());
    if (this.topic !== undefined) output.topic(this.topic);
    const trace: Uint8Array | undefined = message.header('trace');
    const when: number | undefined = message.timestamp;
    if (trace === undefined && when === undefined && message.partition < 0) {
      log.debug(`${message.source}/${message.topic}@${message.offset}: no trace`);
    }
  }
}

const stateless = {
  handle(message: Message, out: Outputs) {
    out.send(`${message.value.length}`).headers([['n', 'v']]);
  },
};

class Plain {
  handle(_message: Message, _out: Outputs) {
    throw Failure.transient('later');
  }
}

export const handler = exportHandler(Tagger);
export const others = [exportHandler(stateless), exportHandler(Plain)];

const outcomes = runHandler(Tagger, [{ value: 'abc', key: null }], { tag: 't' });
for (const outcome of outcomes) {
  if ('outputs' in outcome) text(outcome.outputs[0]?.value);
  else outcome.failure.kind satisfies 'transient' | 'permanent';
}
