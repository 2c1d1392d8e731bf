import type { Command } from 'commander';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { exporterCommand } from './exporter/main.ts';
import { replayCommand, synthCommand } from './replay/main.ts';
import { lbaCommand } from './servers/lba/main.ts';
import { feedCommand } from './servers/mdp/feed-main.ts';
import { mdpCommand } from './servers/mdp/main.ts';
import { REDIS_PERSISTENCE, SERVICES } from './services/definitions.ts';

interface Service {
  image?: string;
  build?: unknown;
  ports?: string[];
  network_mode?: string;
  volumes?: string[];
  command?: string[];
  entrypoint?: string[];
  profiles?: string[];
  environment?: Record<string, string | null> | string[];
  deploy?: { replicas?: number };
}

const read = (path: string): string => readFileSync(new URL(path, import.meta.url), 'utf8');
const compose = parse(read('compose.yaml'), { merge: true }) as {
  services: Record<string, Service>;
};
const services = Object.entries(compose.services);

/** The variables a service sets, by name (a null value passes the shell's through). */
function environment(spec: Service): Record<string, string | null> {
  const env = spec.environment ?? {};
  if (!Array.isArray(env)) return env;
  return Object.fromEntries(
    env.map((entry) => [entry.split('=')[0]!, entry.split('=')[1] ?? null]),
  );
}

/** Every environment variable openbell's code reads: option twins, process.env, k6's __ENV. */
function variablesTheCodeReads(): Set<string> {
  const names = new Set<string>();
  const dirs = ['cli', 'core', 'servers', 'replay', 'exporter', 'loadtest', 'services', 'bin'];
  for (const dir of dirs) {
    for (const file of readdirSync(new URL(dir, import.meta.url), { recursive: true })) {
      const path = String(file);
      if (!/\.(ts|mjs)$/.test(path) || path.endsWith('.test.ts')) continue;
      const source = read(`${dir}/${path}`);
      // replay/main.ts and the swarm name their variables through `env('X')` → `OPENBELL_…X`.
      const prefix = /const env = \(name: string\)(?:: string)? => `(\w*)\$\{name\}`/.exec(source);
      for (const [, dot, name] of source.matchAll(/(\.?)\benv(?:Int)?\(\s*'([A-Z][A-Z0-9_]*)'/g))
        names.add(dot === '' && prefix !== null ? `${prefix[1]}${name}` : name!);
      for (const [, a, b] of source.matchAll(/(?:process\.env|__ENV|env)(?:\.(\w+)|\['(\w+)'\])/g))
        names.add(a ?? b!);
    }
  }
  return names;
}

/** Variables of other programs, named by their documentation: Grafana, OpenTelemetry, RabbitMQ. */
const THIRD_PARTY = /^(GF|OTEL|RABBITMQ)_[A-Z0-9_]+$/;

/** The `openbell` subcommands compose runs, to check their flags, env twins and ports. */
const COMMANDS: Record<string, () => Command> = {
  mdp: mdpCommand,
  lba: lbaCommand,
  feed: feedCommand,
  exporter: exporterCommand,
  replay: replayCommand,
  synth: synthCommand,
};

/** `openbell` argv of a service built from the Dockerfile (a `sh -c` line: its `node cli/main.ts`). */
function openbellArgv(spec: Service): string[] {
  if (spec.entrypoint === undefined) return spec.command ?? [];
  const line = /node cli\/main\.ts ([^&|)]+)/.exec((spec.command ?? []).join(' '));
  return line === null ? [] : line[1]!.trim().split(/\s+/);
}

function optionDefault(command: Command, long: string): unknown {
  return command.options.find((option) => option.long === long)?.defaultValue;
}

/** Ports a service listens on inside its container, from its settings and the code's defaults. */
function listenPorts(name: string): number[] {
  const spec = compose.services[name]!;
  const env = environment(spec);
  const port = (variable: string, fallback: unknown): number => Number(env[variable] ?? fallback);
  const argv = openbellArgv(spec);
  const command = spec.build === undefined ? undefined : COMMANDS[argv[0] ?? '']?.();
  const metrics =
    env['OPENBELL_METRICS_PORT'] === undefined ? [] : [port('OPENBELL_METRICS_PORT', 0)];
  if (command !== undefined) {
    const http: Record<string, string> = {
      mdp: 'MDP_PORT',
      feed: 'FEED_PORT',
      exporter: 'EXPORTER_PORT',
    };
    const replay =
      argv[0] === 'replay' ? [port('OPENBELL_REPLAY_PORT', optionDefault(command, '--port'))] : [];
    const own = http[argv[0]!];
    return [...(own ? [port(own, optionDefault(command, '--port'))] : []), ...replay, ...metrics];
  }
  const image = spec.image ?? '';
  if (image.startsWith('redis:')) return [6379];
  if (image.startsWith('rabbitmq:')) return [5672, 15672, 15692];
  if (image.startsWith('grafana/grafana')) return [port('GF_SERVER_HTTP_PORT', 3000)];
  if (image.startsWith('prom/prometheus:')) {
    const address = (spec.command ?? []).find((arg) => arg.startsWith('--web.listen-address='));
    return [Number(address?.split(':').at(-1) ?? 9090)];
  }
  if (image.startsWith('otel/')) {
    const config = parse(read('grafana/otel-collector.yml')) as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } };
    };
    return [Number(config.receivers.otlp.protocols.http.endpoint.split(':').at(-1))];
  }
  return [];
}

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

  it('runs Redis with the append-only file of the services script, in a volume', () => {
    const redis = compose.services['redis']!;
    const args = redis.command ?? [];
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('--appendonly')).toBe(REDIS_PERSISTENCE.appendonly);
    expect(value('--appendfsync')).toBe(REDIS_PERSISTENCE.appendfsync);
    // The image's working directory, where Redis writes the file: kept across containers.
    expect(redis.volumes).toEqual(['redis-data:/data']);
    expect(parse(read('compose.yaml'))).toHaveProperty(['volumes', 'redis-data']);
  });

  it("keeps the fallback's Prometheus on the host's loopback, with the native config and rules", () => {
    const prometheus = compose.services['prometheus']!;
    expect(prometheus.network_mode).toBe('host');
    // Started by name only (`docker compose up -d redis rabbitmq prometheus`), not by `up -d`.
    expect(prometheus.profiles).toEqual(['loopback']);
    expect(prometheus.volumes).toEqual(
      expect.arrayContaining([
        './grafana/prometheus.yml:/etc/prometheus/prometheus.yml:ro',
        './grafana/rules:/etc/prometheus/rules:ro',
      ]),
    );
    expect(compose.services['prometheus-stack']!.volumes).toEqual([
      './grafana/prometheus.compose.yml:/etc/prometheus/prometheus.yml:ro',
      './grafana/rules:/etc/prometheus/rules:ro',
    ]);
  });

  it('runs the full stack: mdp, two lba, the exporter, Prometheus and Grafana', () => {
    const always = services.filter(([, spec]) => spec.profiles === undefined).map(([name]) => name);
    expect(always.sort()).toEqual(
      ['exporter', 'grafana', 'lba', 'mdp', 'prometheus-stack', 'rabbitmq', 'redis'].sort(),
    );
    expect(compose.services['lba']!.deploy?.replicas).toBe(2);
    expect(compose.services['exporter']!.command).toEqual([
      'exporter',
      '--config',
      '/app/exporter/openbell.yml',
    ]);
  });

  it('gives every service an image or a build, and every image a pinned tag', () => {
    for (const [name, spec] of services) {
      expect(spec.image ?? spec.build, name).toBeDefined();
      const tag = /^[\w./-]+:([\w.-]+)$/.exec(spec.image ?? '')?.[1];
      expect(tag, `${name}: ${spec.image}`).toBeDefined();
      expect(tag, name).not.toBe('latest');
      // Registry images carry a version; the locally built one is named by compose itself.
      if (spec.build === undefined) expect(tag, name).toMatch(/\d/);
    }
  });

  it('sets only environment variables the code reads, or documented third-party ones', () => {
    const known = variablesTheCodeReads();
    expect(known).toContain('MDP_PORT');
    for (const [name, spec] of services) {
      for (const variable of Object.keys(environment(spec))) {
        expect(known.has(variable) || THIRD_PARTY.test(variable), `${name}: ${variable}`).toBe(
          true,
        );
      }
    }
  });

  it('runs openbell commands with flags and variables those commands have', () => {
    const processWide = variablesTheCodeReads();
    for (const [name, spec] of services.filter(([, s]) => s.build !== undefined)) {
      const argv = openbellArgv(spec);
      const command = COMMANDS[argv[0] ?? '']?.();
      expect(command, `${name}: ${argv.join(' ')}`).toBeDefined();
      const longs = new Set(command!.options.map((option) => option.long));
      for (const flag of argv.filter((arg) => arg.startsWith('--')))
        expect(longs, name).toContain(flag);
      const twins = new Set(command!.options.map((option) => option.envVar));
      for (const variable of Object.keys(environment(spec))) {
        const read =
          twins.has(variable) ||
          (processWide.has(variable) && !/^(MDP|LBA|FEED|EXPORTER)_/.test(variable));
        expect(read || THIRD_PARTY.test(variable), `${name}: ${variable}`).toBe(true);
      }
      for (const path of argv.filter((arg) => arg.startsWith('/app/')))
        expect(existsSync(new URL(path.slice('/app/'.length), import.meta.url)), path).toBe(true);
    }
  });

  it('publishes and scrapes only ports the services listen on, bound where others reach them', () => {
    for (const [name, spec] of services) {
      for (const mapping of spec.ports ?? []) {
        const [host, , container] = mapping.split(':');
        expect(host, `${name} ${mapping}`).toBe('127.0.0.1');
        expect(listenPorts(name), `${name} ${mapping}`).toContain(Number(container));
      }
      if (spec.build !== undefined && listenPorts(name).length > 0) {
        const hosts = Object.entries(environment(spec)).filter(([key]) => key.endsWith('_HOST'));
        expect(hosts.length, name).toBeGreaterThan(0);
        for (const [key, value] of hosts) expect(value, `${name} ${key}`).toBe('0.0.0.0');
      }
    }
    const prometheus = read('grafana/prometheus.compose.yml');
    const addresses = [
      ...prometheus.matchAll(/['/]([a-z][\w-]*):(\d+)/g),
      ...[...prometheus.matchAll(/names: \[(\w+)\]\n\s+type: A\n\s+port: (\d+)/g)],
    ].filter(([, host]) => host !== 'localhost');
    expect(addresses.length).toBeGreaterThan(5);
    for (const [text, host, port] of addresses) {
      expect(compose.services, text).toHaveProperty(host!);
      expect(listenPorts(host!), text).toContain(Number(port));
    }
    const grafana = read('grafana/provisioning/datasources/prometheus.yml');
    expect(grafana).toContain('url: http://prometheus-stack:9090');
  });

  it('mounts only files and folders that exist in the repository', () => {
    for (const spec of Object.values(compose.services)) {
      for (const volume of spec.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (!source.startsWith('./')) continue; // a named volume
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

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const ignored = read('.dockerignore')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));

  it('runs the CLI from a file that exists and is not left out of the image', () => {
    const entrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    expect(entrypoint[0]).toBe('node');
    const file = entrypoint[1]!;
    expect(existsSync(new URL(file, import.meta.url)), file).toBe(true);
    for (const pattern of ignored) expect(file.startsWith(pattern), pattern).toBe(false);
    expect(/^WORKDIR \/app$/m.test(dockerfile)).toBe(true);
  });

  it('builds on the Node release the project pins, and installs production dependencies only', () => {
    const pkg = JSON.parse(read('package.json')) as { devDependencies: Record<string, string> };
    const node = pkg.devDependencies['node']!.replace(/^\^/, '');
    expect(dockerfile).toMatch(new RegExp(`^FROM node:${node.replace(/\./g, '\\.')}-slim$`, 'm'));
    expect(dockerfile).toMatch(/^RUN npm ci --omit=dev/m);
    expect(ignored).toEqual(
      expect.arrayContaining(['node_modules', '.services', '.cache', '.git']),
    );
  });
});
