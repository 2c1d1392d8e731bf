import { describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  parseBoardOptions,
  parseConnectionOptions,
  parseTransportOptions,
} from './config.ts';
import { ConfigError } from './errors.ts';

describe('parseTransportOptions', () => {
  it('returns the defaults for empty input and merges over them', () => {
    expect(parseTransportOptions()).toEqual(DEFAULTS.transport);
    expect(parseTransportOptions({ queueTtlMs: 250 })).toEqual({
      ...DEFAULTS.transport,
      queueTtlMs: 250,
    });
  });

  it('keeps a legitimate zero instead of replacing it by the default', () => {
    expect(parseTransportOptions({ batchMaxDelayMs: 0 }).batchMaxDelayMs).toBe(0);
  });

  it('names the field and its allowed range', () => {
    expect(() => parseTransportOptions({ queueTtlMs: 0 })).toThrow(ConfigError);
    expect(() => parseTransportOptions({ queueTtlMs: 0 })).toThrow(
      /^transport\.queueTtlMs: .*>=1.*got 0$/,
    );
    expect(() => parseTransportOptions({ prefetch: 1.5 })).toThrow(/transport\.prefetch: .*int/i);
  });

  it('rejects unknown fields, naming them', () => {
    expect(() => parseTransportOptions({ ttl: 5 } as never)).toThrow(/ttl/);
  });
});

describe('parseBoardOptions', () => {
  it('caps the view at 500 rows', () => {
    expect(parseBoardOptions({ top: 500 }).top).toBe(500);
    expect(() => parseBoardOptions({ top: 501 })).toThrow(/board\.top: .*<=500/);
  });
});

describe('parseConnectionOptions', () => {
  it('accepts redis and amqp URLs and a namespace', () => {
    const out = parseConnectionOptions({
      redisUrl: 'rediss://h:6380/1',
      amqpUrl: 'amqps://u:p@h/vh',
      namespace: 'lab-1',
    });
    expect(out).toEqual({
      redisUrl: 'rediss://h:6380/1',
      amqpUrl: 'amqps://u:p@h/vh',
      namespace: 'lab-1',
    });
  });

  it('rejects a wrong scheme without echoing the password', () => {
    let error: unknown;
    try {
      parseConnectionOptions({ amqpUrl: 'http://guest:topsecret@h' });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('connection.amqpUrl');
    expect((error as Error).message).toContain('amqp://');
    expect((error as Error).message).not.toContain('topsecret');
  });
});
