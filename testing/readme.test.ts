import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const read = (path: string): string => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

describe('README and CI', () => {
  it('the README gives the main job then the tests, and CI runs exactly its test command', () => {
    const readmeCommands = [
      ...read('README.md')
        .split('## ')[0]!
        .matchAll(/```sh\n([\s\S]*?)```/g),
    ].flatMap((m) => m[1]!.trim().split('\n'));
    const ciCommands = read('.ci/run')
      .split('\n')
      .filter(
        (line) =>
          line.trim() !== '' &&
          !line.startsWith('#') &&
          !line.startsWith('set ') &&
          !line.startsWith('cd '),
      );
    // First the main job (the lab on the bundled scenario), then the tests; CI runs the tests.
    expect(readmeCommands).toEqual(['npm ci && npm run lab', 'npm ci && npm test']);
    expect(ciCommands).toEqual([readmeCommands[1]]);
  });
});
