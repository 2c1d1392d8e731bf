import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { TestProject } from 'vitest/node';
import { ensureServices, type ServiceUrls } from '../services/ensure.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    services: ServiceUrls;
  }
}

/**
 * Makes sure the real services run before any test file starts (installing and starting them
 * when needed), and hands their URLs to the tests. They stay up afterwards, so the next run is
 * quick; `npm run services -- down` stops them.
 */
export default async function setup(project: TestProject): Promise<void> {
  const log = pino({ name: 'test-services', level: 'info' }, pino.destination(2));
  const { urls } = await ensureServices({
    projectDir: fileURLToPath(new URL('..', import.meta.url)),
    env: process.env,
    log,
  });
  project.provide('services', urls);
}
