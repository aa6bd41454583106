// Routes JSON records to the topic named by one of their top-level fields.
//
// Settings:
// - `route_field` (required): a top-level string field naming the target topic; records
//   without it go to the pipeline's default output topic.
// - `drop_field` and `drop_value` (optional, together): records whose `drop_field` equals
//   `drop_value` are dropped. A string field matches its content (`drop_value = "test"` matches
//   `"test"`); any field also matches its JSON text (`true`, `42`, `null`, `"test"`,
//   `{"a": 1}`), compared as JSON so spacing does not matter.
//
// The value is sent unchanged, with its key and headers. A value that is not a JSON object
// fails permanently.

import { Failure, exportHandler } from '../../runnel/index.js';

// A byte order mark is not JSON: keep it, so that JSON.parse refuses it.
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Records whose `field` holds `drop_value`. */
class DropRule {
  constructor(field, text) {
    this.field = field;
    /** `drop_value` as written, matched against string fields. */
    this.text = text;
    /**
     * `drop_value` parsed as JSON when it is JSON, matched against any field; parsed once here
     * rather than serializing every record's field.
     */
    this.isJson = true;
    try {
      this.json = JSON.parse(text);
    } catch {
      this.isJson = false;
    }
  }

  matches(field) {
    return field === this.text || (this.isJson && jsonEqual(this.json, field));
  }
}

/** What `route` decides for a record: drop it, or send it to a topic (null: the default). */
const DROP = Symbol('drop');

export class JsonRouter {
  static init(config) {
    const routeField = config.require('route_field');
    const dropField = config.get('drop_field');
    const dropValue = config.get('drop_value');
    if ((dropField === undefined) !== (dropValue === undefined)) {
      throw new Error('`drop_field` and `drop_value` work together: set both or neither');
    }
    const dropRule = dropField === undefined ? undefined : new DropRule(dropField, dropValue);
    return new JsonRouter(routeField, dropRule);
  }

  constructor(routeField, dropRule) {
    this.routeField = routeField;
    this.dropRule = dropRule;
  }

  handle(message, out) {
    let record;
    try {
      record = JSON.parse(strictUtf8.decode(message.value));
    } catch (error) {
      return Failure.permanent(`value is not valid JSON: ${error.message}`);
    }
    const topic = this.route(record);
    if (topic === DROP) return;
    const output = out.send(message.value);
    if (topic !== null) output.topic(topic);
    output.key(message.key).headers(message.headers);
  }

  /** The topic for `record` (null: the default topic), or DROP; throws a permanent Failure. */
  route(record) {
    const type = jsonType(record);
    if (type !== 'object') {
      throw Failure.permanent(`value is a JSON ${type}, expected an object`);
    }
    const rule = this.dropRule;
    if (rule !== undefined && Object.hasOwn(record, rule.field) && rule.matches(record[rule.field])) {
      return DROP;
    }
    if (!Object.hasOwn(record, this.routeField)) return null;
    const topic = record[this.routeField];
    if (typeof topic === 'string' && topic !== '') return topic;
    throw Failure.permanent(
      `field \`${this.routeField}\` must be a non-empty string naming the target topic, ` +
        `found ${JSON.stringify(topic)}`,
    );
  }
}

function jsonType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value; // boolean, number, string or object
}

/** Whether two parsed JSON values are equal: objects whatever the order of their fields. */
export function jsonEqual(a, b) {
  const type = jsonType(a);
  if (type !== jsonType(b)) return false;
  if (type === 'array') {
    return a.length === b.length && a.every((item, index) => jsonEqual(item, b[index]));
  }
  if (type === 'object') {
    const names = Object.keys(a);
    return (
      names.length === Object.keys(b).length &&
      names.every((name) => Object.hasOwn(b, name) && jsonEqual(a[name], b[name]))
    );
  }
  return a === b;
}

export const handler = exportHandler(JsonRouter);
