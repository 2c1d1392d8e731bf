import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ServiceName } from './definitions.ts';

/** A process the services script started, remembered so `down` stops exactly it. */
export interface StartedProcess {
  pid: number;
  url: string;
  marker: string;
  startedAt: string;
}

/** What the services script started, by service, plus compose projects it brought up. */
export interface ServicesState {
  processes: Partial<Record<ServiceName, StartedProcess>>;
  compose?: { file: string; services: ServiceName[] };
}

const FILE = 'state.json';

/** Reads the state in `dir`; a missing or unreadable file is an empty state. */
export function readState(dir: string): ServicesState {
  try {
    const parsed = JSON.parse(readFileSync(join(dir, FILE), 'utf8')) as Partial<ServicesState>;
    return {
      processes: parsed.processes ?? {},
      ...(parsed.compose ? { compose: parsed.compose } : {}),
    };
  } catch {
    // First run, or a file from an interrupted write: nothing is known to be ours.
    return { processes: {} };
  }
}

/** Writes the state atomically (write then rename), so a crash never leaves half a file. */
export function writeState(dir: string, state: ServicesState): void {
  mkdirSync(dir, { recursive: true });
  const temp = join(dir, `${FILE}.${process.pid}.tmp`);
  writeFileSync(temp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(temp, join(dir, FILE));
}
