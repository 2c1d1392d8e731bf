import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import {
  startPrivateRabbitmq,
  startPrivateRedis,
  type PrivateRedisOptions,
  type PrivateService,
} from '../services/private.ts';

/**
 * Starts private Redis and RabbitMQ instances for a test file that restarts, kills or pauses them
 * (never the shared ones), and stops them and deletes their data after the file's tests.
 */
export function usePrivateServices(): {
  redis(options?: Omit<PrivateRedisOptions, 'baseDir'>): Promise<PrivateService>;
  rabbitmq(): Promise<PrivateService>;
} {
  const baseDir = mkdtempSync(join(tmpdir(), 'openbell-private-'));
  const started: PrivateService[] = [];
  afterAll(async () => {
    await Promise.all(started.map((service) => service.close()));
    rmSync(baseDir, { recursive: true, force: true });
  });
  const keep = (service: PrivateService): PrivateService => {
    started.push(service);
    return service;
  };
  return {
    redis: async (options) => keep(await startPrivateRedis({ baseDir, ...options })),
    rabbitmq: async () => keep(await startPrivateRabbitmq({ baseDir })),
  };
}
