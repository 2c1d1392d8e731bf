import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { SERVICES } from './services/definitions.ts';

interface Compose {
  services: Record<
    string,
    {
      image: string;
      ports?: string[];
      network_mode?: string;
      volumes?: string[];
      command?: string[];
      profiles?: string[];
    }
  >;
}

const compose = parse(readFileSync(new URL('compose.yaml', import.meta.url), 'utf8')) as Compose;

describe('compose.yaml', () => {
  it('defines every service the services script may bring up with docker compose', () => {
    for (const service of SERVICES) expect(compose.services).toHaveProperty(service.name);
  });

  it('publishes each service on the loopback address the native path uses', () => {
    for (const service of SERVICES) {
      const { hostname, port } = new URL(service.defaultUrl);
      const spec = compose.services[service.name]!;
      if (spec.network_mode === 'host') continue;
      expect(spec.ports).toContain(`${hostname}:${port}:${port}`);
    }
    expect(compose.services['rabbitmq']!.ports).toEqual(
      expect.arrayContaining(['127.0.0.1:15672:15672', '127.0.0.1:15692:15692']),
    );
  });

  it('mounts only files and folders that exist in the repository', () => {
    for (const spec of Object.values(compose.services)) {
      for (const volume of spec.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('./.services/')) continue;
        expect(existsSync(new URL(source, import.meta.url)), source).toBe(true);
      }
    }
  });

  it('runs the k6 feed suite from the mounted loadtest folder, only under its profile', () => {
    const k6 = compose.services['k6']!;
    expect(k6.profiles).toEqual(['k6']);
    expect(k6.volumes).toContain('./loadtest:/loadtest:ro');
    expect(k6.command).toEqual(['run', '/loadtest/feed.k6.ts']);
    expect(existsSync(new URL('loadtest/feed.k6.ts', import.meta.url))).toBe(true);
  });
});
