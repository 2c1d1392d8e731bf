import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { benchDecode } from './decode.ts';
import type { Measurement } from './measure.ts';

/** A goal from an issue, checked against a measured figure. */
interface Goal {
  name: string;
  measurement: string;
  target: number;
  actual: number;
  met: boolean;
}

const { values } = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    events: { type: 'string' },
    out: { type: 'string', default: 'bench-results' },
  },
});
const suites: Record<string, () => Measurement[]> = {
  decode: () => benchDecode(values.events === undefined ? {} : { events: Number(values.events) }),
};
const selected = values.only ?? Object.keys(suites);
for (const name of selected) {
  if (!(name in suites))
    throw new Error(
      `unknown suite ${JSON.stringify(name)}; have ${Object.keys(suites).join(', ')}`,
    );
}

const results: Record<string, Measurement[]> = {};
for (const name of selected) {
  process.stderr.write(`bench: ${name}…\n`);
  results[name] = suites[name]!();
}

const goals: Goal[] = [];
const figure = (suite: string, name: string): number | undefined =>
  results[suite]?.find((m) => m.name === name)?.perSecond;
const decodeBatchRate = figure('decode', 'msgpack.decodeBatch');
if (decodeBatchRate !== undefined) {
  goals.push({
    name: 'decode msgpack batches on one core (events/s)',
    measurement: 'decode/msgpack.decodeBatch',
    target: 1_000_000,
    actual: decodeBatchRate,
    met: decodeBatchRate >= 1_000_000,
  });
}

const report = {
  at: new Date().toISOString(),
  machine: {
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  },
  results,
  goals,
};
const json = `${JSON.stringify(report, null, 2)}\n`;
process.stdout.write(json);
mkdirSync(values.out, { recursive: true });
writeFileSync(`${values.out}/bench-${report.at.replace(/[:.]/g, '-')}.json`, json);
for (const goal of goals)
  process.stderr.write(
    `${goal.met ? 'met ' : 'MISSED'} ${goal.name}: ${goal.actual} (goal ${goal.target})\n`,
  );
