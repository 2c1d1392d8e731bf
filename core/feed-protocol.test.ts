import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import { parseChannel, parseClientMessage, parseFeedLimits, tickSlices } from './feed-protocol.ts';
import {
  TOKEN_CLOCK_SKEW_SECONDS,
  channelAllowed,
  mintFeedToken,
  verifyFeedToken,
} from './feed-token.ts';

const SECRET = 'unit-test-secret-0123456789abcdef-xyz';

describe('feed protocol', () => {
  it('parseChannel knows the five boards and valid symbols only', () => {
    expect(parseChannel('board:momentum')).toEqual({ kind: 'board', board: 'momentum' });
    expect(parseChannel('symbol:BRK.B')).toEqual({ kind: 'symbol', sym: 'BRK.B' });
    for (const bad of ['board:losers', 'symbol:', 'symbol:A:B', 'symbol:{x}', 'quotes:AAPL', ''])
      expect(parseChannel(bad)).toBeUndefined();
  });

  it('parseClientMessage returns the message or a code, echoing the id', () => {
    expect(
      parseClientMessage('{"op":"subscribe","channels":["board:volume"],"top":5,"id":3}'),
    ).toEqual({
      message: { op: 'subscribe', channels: ['board:volume'], top: 5, id: 3 },
    });
    expect(parseClientMessage('{"op":"ping"}')).toEqual({ message: { op: 'ping' } });
    expect(parseClientMessage('nope')).toMatchObject({ code: 'bad_message' });
    expect(parseClientMessage('[1]')).toMatchObject({ code: 'bad_message' });
    expect(parseClientMessage('{"op":"dance","id":"x"}')).toMatchObject({
      code: 'unknown_op',
      id: 'x',
    });
    expect(parseClientMessage('{"op":"subscribe","channels":[],"id":1}')).toMatchObject({
      code: 'bad_message',
      id: 1,
    });
    const zeroTop = parseClientMessage('{"op":"subscribe","channels":["x"],"top":0}');
    expect(zeroTop).toMatchObject({ code: 'bad_message' });
    expect((zeroTop as { detail: string }).detail).toMatch(/^top: /);
  });

  it('parseFeedLimits names the bad field', () => {
    expect(parseFeedLimits().cadenceMs).toBe(250);
    expect(() => parseFeedLimits({ cadenceMs: 0 })).toThrow(ConfigError);
    expect(() => parseFeedLimits({ softLimitBytes: 8192, hardLimitBytes: 4096 })).toThrow(
      /feed\.hardLimitBytes/,
    );
    expect(() => parseFeedLimits({ slices: 0 })).toThrow(/feed\.slices/);
    expect(() => parseFeedLimits({ maxLagMs: 5000, slowCloseMs: 5000 })).toThrow(
      /feed\.slowCloseMs: slowCloseMs must be above maxLagMs/,
    );
    // The defaults close a client that stopped reading before the heartbeat would call it dead.
    const d = parseFeedLimits();
    expect(d.slowCloseMs + d.maxLagMs + d.cadenceMs).toBeLessThan(d.heartbeatMs);
    expect(d).toMatchObject({ maxConnectionsPerSubject: 10, maxTokenTtlSeconds: 86_400 });
  });

  it('tickSlices keeps the slices’ ticks at least 5 ms apart', () => {
    expect(tickSlices(parseFeedLimits())).toBe(10);
    expect(tickSlices({ cadenceMs: 250, slices: 100 })).toBe(50);
    expect(tickSlices({ cadenceMs: 20, slices: 10 })).toBe(4);
    expect(tickSlices({ cadenceMs: 10, slices: 1 })).toBe(1);
    expect(tickSlices({ cadenceMs: 4, slices: 3 })).toBe(1);
  });
});

describe('feed tokens', () => {
  it('verify what mint signed, with the allow-list', async () => {
    const token = await mintFeedToken(SECRET, {
      sub: 'ann',
      ttlSeconds: 60,
      channels: ['board:*'],
    });
    const claims = await verifyFeedToken(SECRET, token);
    expect(claims).toMatchObject({ sub: 'ann', channels: ['board:*'] });
    expect(channelAllowed(claims as { channels: string[] }, 'board:volume')).toBe(true);
    expect(channelAllowed(claims as { channels: string[] }, 'symbol:AAPL')).toBe(false);
    expect(channelAllowed({}, 'symbol:AAPL')).toBe(true);
  });

  it('refuse a wrong secret, a tampered payload, an unsigned token and an expired one', async () => {
    const token = await mintFeedToken(SECRET, { sub: 'ann', ttlSeconds: 60 });
    expect(await verifyFeedToken(`${SECRET}!`, token)).toMatchObject({ failure: 'invalid' });
    const [header, , signature] = token.split('.');
    const payload = Buffer.from(
      JSON.stringify({ sub: 'eve', exp: 9e9, aud: 'openbell-feed' }),
    ).toString('base64url');
    expect(await verifyFeedToken(SECRET, `${header}.${payload}.${signature}`)).toMatchObject({
      failure: 'invalid',
    });
    const none = Buffer.from('{"alg":"none"}').toString('base64url');
    expect(await verifyFeedToken(SECRET, `${none}.${payload}.`)).toMatchObject({
      failure: 'invalid',
    });
    const expired = await mintFeedToken(SECRET, { sub: 'ann', ttlSeconds: 1 });
    await new Promise((r) => setTimeout(r, 2100));
    expect(await verifyFeedToken(SECRET, expired)).toMatchObject({ failure: 'expired' });
  });

  it('refuse a lifetime over the maximum and an iat in the future, beyond a little skew', async () => {
    const nowMs = Date.parse('2026-11-24T14:30:00Z');
    const now = nowMs / 1000;
    const key = new TextEncoder().encode(SECRET);
    const sign = (iat: number | undefined, exp: number) => {
      const jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('ann')
        .setAudience('openbell-feed')
        .setExpirationTime(exp);
      if (iat !== undefined) jwt.setIssuedAt(iat);
      return jwt.sign(key);
    };
    const verify = async (token: Promise<string>, maxTtlSeconds?: number) =>
      verifyFeedToken(SECRET, await token, {
        nowMs,
        ...(maxTtlSeconds === undefined ? {} : { maxTtlSeconds }),
      });
    expect(await verify(sign(now, now + 86_400))).toMatchObject({ sub: 'ann' });
    expect(await verify(sign(now, now + 86_401))).toMatchObject({ failure: 'lifetime' });
    expect(await verify(sign(now, now + 100 * 365 * 86_400))).toMatchObject({
      failure: 'lifetime',
    });
    expect(await verify(sign(now, now + 7 * 86_400), 7 * 86_400)).toMatchObject({ sub: 'ann' });
    expect(await verify(sign(now + TOKEN_CLOCK_SKEW_SECONDS, now + 600))).toMatchObject({
      sub: 'ann',
    });
    expect(await verify(sign(now + TOKEN_CLOCK_SKEW_SECONDS + 1, now + 600))).toMatchObject({
      failure: 'future',
    });
    expect(await verify(sign(undefined, now + 600))).toMatchObject({ failure: 'invalid' });
  });

  it('refuse to sign with a short secret', async () => {
    await expect(mintFeedToken('short', { sub: 'a', ttlSeconds: 1 })).rejects.toThrow(
      /at least 32/,
    );
  });
});
