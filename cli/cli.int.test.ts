import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const { version } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };
const BIN = fileURLToPath(new URL('../bin/openbell.mjs', import.meta.url));
const SYSTEM_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find(
  (node) =>
    existsSync(node) &&
    Number(spawnSync(node, ['-p', 'process.versions.node.split(".")[0]']).stdout.toString()) < 24,
);

function openbell(args: string[], node = process.execPath) {
  const result = spawnSync(node, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('openbell CLI', () => {
  it('lists only the commands that work, with help for each', () => {
    const { code, stdout } = openbell(['--help']);
    expect(code).toBe(0);
    const commands = [...stdout.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]);
    expect(commands).toEqual(['mdp', 'lba', 'boards', 'services', 'help']);
    const up = openbell(['services', 'up', '--help']);
    expect(up.stdout).toContain('--only <names>');
    expect(up.stdout.replace(/\s+/g, ' ')).toContain('(env: OPENBELL_SERVICES)');
    expect(up.stdout).toContain('REDIS_URL');
  });

  it('reports every service up, as JSON, without starting anything', () => {
    const { code, stdout } = openbell(['services', 'status', '--json']);
    expect(code).toBe(0);
    const rows = JSON.parse(stdout) as { name: string; state: string }[];
    expect(rows.map((r) => [r.name, r.state])).toEqual([
      ['redis', 'up'],
      ['rabbitmq', 'up'],
      ['prometheus', 'up'],
    ]);
  });

  it('is what `npm run services` runs, as the README says', () => {
    const result = spawnSync('npm', ['run', '-s', 'services', '--', 'status', '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(0);
    expect((JSON.parse(result.stdout) as unknown[]).length).toBe(3);
  });

  it('rejects an unknown service name with a clear error', () => {
    const { code, stderr } = openbell(['services', 'up', '--only', 'redis,mysql']);
    expect(code).not.toBe(0);
    expect(stderr).toContain('unknown service "mysql"');
  });

  it.skipIf(SYSTEM_NODE === undefined)(
    'runs from an older system Node by switching to the pinned Node 24',
    () => {
      const { code, stdout } = openbell(['--version'], SYSTEM_NODE);
      expect(code).toBe(0);
      expect(stdout.trim()).toBe(version);
    },
  );
});
