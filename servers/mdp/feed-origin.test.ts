import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../core/index.ts';
import { originAllowed, parseAllowedOrigins } from './feed-origin.ts';

describe('feed origin allow-list', () => {
  it('parseAllowedOrigins takes exact origins, loopback and *, and names a malformed entry', () => {
    const policy = parseAllowedOrigins(['https://Scanner.Example.com/', ' loopback ', '']);
    expect(policy).toEqual({
      any: false,
      loopback: true,
      origins: new Set(['https://scanner.example.com']),
    });
    for (const bad of [
      'scanner.example.com',
      'https://x.example/path',
      'ftp://x.example',
      'https://x.example?q',
    ])
      expect(() => parseAllowedOrigins([bad])).toThrow(ConfigError);
    expect(() => parseAllowedOrigins(['https://x.example/path'])).toThrow(/feed\.allowedOrigins/);
  });

  it('originAllowed matches scheme, host and port, and loopback hosts on any port', () => {
    const listed = parseAllowedOrigins(['https://scanner.example.com']);
    expect(originAllowed(listed, 'https://scanner.example.com')).toBe(true);
    expect(originAllowed(listed, 'https://scanner.example.com:443')).toBe(true);
    expect(originAllowed(listed, 'https://scanner.example.com:8443')).toBe(false);
    expect(originAllowed(listed, 'http://scanner.example.com')).toBe(false);
    expect(originAllowed(listed, 'http://localhost:8080')).toBe(false);
    const loopback = parseAllowedOrigins(['loopback']);
    for (const origin of ['http://localhost:8080', 'https://127.0.0.1', 'http://[::1]:3000'])
      expect(originAllowed(loopback, origin)).toBe(true);
    for (const origin of [
      'http://localhost.evil.example',
      'http://127.0.0.2',
      'null',
      'file://',
      'nonsense',
    ])
      expect(originAllowed(loopback, origin)).toBe(false);
    expect(originAllowed(parseAllowedOrigins(['*']), 'null')).toBe(true);
  });
});
