import { describe, expect, it } from 'vitest';
import { addressBucket } from './feed-gate.ts';

describe('feed gate', () => {
  it('addressBucket keeps IPv4 addresses and puts IPv6 ones by their /64', () => {
    expect(addressBucket('203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
    expect(addressBucket('64:ff9b:0:0:0::1.2.3.4')).toBe('64:ff9b:0:0::/64');
    expect(addressBucket('2001:0DB8:0001:0002::')).toBe('2001:db8:1:2::/64');
    expect(addressBucket(undefined)).toBe('unknown');
  });
});
