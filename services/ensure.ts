import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ServiceError, redactUrl } from '../core/index.ts';
import type { ServiceDefinition, ServiceName } from './definitions.ts';
import { SERVICES, managementUrlFor } from './definitions.ts';
import { aptInstall, aptUnavailableReason, dockerComposeAvailable, run } from './install.ts';
import { isOurProcess, spawnDetached, stopProcess, tail } from './processes.ts';
import { waitFor } from './probe.ts';
import { readState, writeState, type ServicesState } from './state.ts';

/** Options of {@link ensureServices}. */
export interface EnsureServicesOptions {
  /** The project folder: holds `compose.yaml`, the services' config files and the `.services/` data folder. */
  projectDir: string;
  /** Where `REDIS_URL`, `AMQP_URL` and `PROMETHEUS_URL` are read from. */
  env: Readonly<Record<string, string | undefined>>;
  /** Services to make sure of. @default all of them */
  only?: readonly ServiceName[];
  log: Logger;
  /** Service definitions to use (tests substitute their own). @default SERVICES */
  definitions?: readonly ServiceDefinition[];
  /** Whether `apt-get install` may be tried. @default true */
  install?: boolean;
  /** Whether `docker compose up` may be tried. @default true */
  docker?: boolean;
}

/** How a service was found or made available. */
export type ServiceSource = 'env' | 'running' | 'started' | 'installed' | 'docker';

/** One service that answers, and how it came to. */
export interface ServiceEndpoint {
  name: ServiceName;
  url: string;
  source: ServiceSource;
  version: string;
}

/** URLs of the running services, ready to hand to openbell's processes and tests. */
export interface ServiceUrls {
  redisUrl?: string;
  amqpUrl?: string;
  rabbitmqManagementUrl?: string;
  prometheusUrl?: string;
}

/** The result of {@link ensureServices}. */
export interface EnsureServicesResult {
  endpoints: ServiceEndpoint[];
  urls: ServiceUrls;
}

/** The project-local, git-ignored folder that holds the data of services the script starts. */
export const stateDir = (projectDir: string): string => join(projectDir, '.services');

/**
 * Makes sure the backing services run, preferring, per service: the URL in its env var when it
 * answers; one already answering on the default loopback URL; the installed binary, started on
 * loopback with data under `.services/`; an `apt-get install` (root on Debian/Ubuntu); `docker
 * compose up -d`. Otherwise throws one {@link ServiceError} saying what to install. Idempotent.
 */
export async function ensureServices(
  options: EnsureServicesOptions,
): Promise<EnsureServicesResult> {
  const { log } = options;
  const dir = stateDir(options.projectDir);
  mkdirSync(dir, { recursive: true });
  const wanted = (options.definitions ?? SERVICES).filter(
    (s) => options.only === undefined || options.only.includes(s.name),
  );
  const state = readState(dir);
  const found = new Map<ServiceName, ServiceEndpoint>();
  const why = new Map<ServiceName, string>();

  await Promise.all(
    wanted.map(async (service) => {
      const endpoint = await findRunning(service, options.env, state, log);
      if ('url' in endpoint) found.set(service.name, endpoint);
      else why.set(service.name, endpoint.error);
    }),
  );

  let missing = wanted.filter((s) => !found.has(s.name));
  if (missing.length > 0) await installMissing(missing, dir, why, log, options.install ?? true);

  await Promise.all(
    missing.map(async (service) => {
      const binary = service.findBinary();
      if (binary === undefined) return;
      const endpoint = await startNative(service, binary, options.projectDir, state, log);
      if ('url' in endpoint) found.set(service.name, endpoint);
      else why.set(service.name, endpoint.error);
    }),
  );
  writeState(dir, state);

  missing = wanted.filter((s) => !found.has(s.name));
  if (missing.length > 0 && (options.docker ?? true) && dockerComposeAvailable()) {
    for (const endpoint of await startCompose(missing, options.projectDir, state, log))
      found.set(endpoint.name, endpoint);
    writeState(dir, state);
    missing = wanted.filter((s) => !found.has(s.name));
  }

  if (missing.length > 0)
    throw new ServiceError(missing.map((s) => s.name).join(', '), explain(missing, why));
  const endpoints = wanted.map((s) => found.get(s.name)!);
  // Settings changed since a service was started (Redis's append-only file): fixed at runtime on
  // one openbell started, warned about on one it did not.
  await Promise.all(
    wanted.map((service) => {
      const { url, source } = found.get(service.name)!;
      const fix = source === 'started' || source === 'docker';
      return service.settings?.(url, { fix, log }) ?? Promise.resolve(undefined);
    }),
  );
  return { endpoints, urls: toUrls(endpoints) };
}

async function findRunning(
  service: ServiceDefinition,
  env: Readonly<Record<string, string | undefined>>,
  state: ServicesState,
  log: Logger,
): Promise<ServiceEndpoint | { error: string }> {
  const fromEnv = env[service.envVar];
  if (fromEnv !== undefined && fromEnv !== '') {
    const result = await service.probe(fromEnv);
    if (result.ok)
      return { name: service.name, url: fromEnv, source: 'env', version: result.version };
    log.warn(
      { service: service.name, url: redactUrl(fromEnv), error: result.error },
      `${service.envVar} does not answer; trying a local ${service.name}`,
    );
  }
  const ours = state.processes[service.name];
  const url = service.defaultUrl;
  let result = await service.probe(url);
  // A process we started that is still booting (an earlier run was interrupted): wait for it.
  if (!result.ok && ours !== undefined && isOurProcess(ours.pid, ours.marker)) {
    result = await waitFor(() => service.probe(url), 60_000);
  }
  if (!result.ok) return { error: result.error };
  const source = ours !== undefined && isOurProcess(ours.pid, ours.marker) ? 'started' : 'running';
  return { name: service.name, url, source, version: result.version };
}

async function installMissing(
  missing: readonly ServiceDefinition[],
  dir: string,
  why: Map<ServiceName, string>,
  log: Logger,
  allowed: boolean,
): Promise<void> {
  const absent = missing.filter((s) => s.findBinary() === undefined);
  if (absent.length === 0) return;
  const reason = allowed ? aptUnavailableReason() : 'installing is switched off';
  if (reason !== undefined) {
    for (const s of absent)
      why.set(s.name, `not installed, and apt-get cannot install it (${reason})`);
    return;
  }
  const packages = absent.map((s) => s.aptPackage);
  const logFile = join(dir, 'apt.log');
  log.info({ packages, log: logFile }, 'installing with apt-get');
  const ok = await aptInstall(packages, logFile);
  if (!ok) {
    for (const s of absent)
      why.set(s.name, `apt-get install ${s.aptPackage} failed:\n${tail(logFile, 5)}`);
  }
  for (const s of absent)
    if (s.findBinary() !== undefined) log.info({ service: s.name }, 'installed');
}

async function startNative(
  service: ServiceDefinition,
  binary: string,
  projectDir: string,
  state: ServicesState,
  log: Logger,
): Promise<ServiceEndpoint | { error: string }> {
  const dir = join(stateDir(projectDir), service.name);
  mkdirSync(dir, { recursive: true });
  const plan = service.plan(binary, dir, projectDir);
  const logFile = join(dir, `${service.name}.log`);
  const pid = spawnDetached(plan.command, plan.args, {
    logFile,
    env: plan.env,
    cwd: plan.cwd ?? dir,
  });
  state.processes[service.name] = {
    pid,
    url: service.defaultUrl,
    marker: plan.marker,
    startedAt: new Date().toISOString(),
  };
  log.info({ service: service.name, pid, binary, log: logFile }, 'starting');
  const exited = (): boolean => !isOurProcess(pid, plan.marker);
  const deadline = Date.now() + plan.readyTimeoutMs;
  for (;;) {
    const result = await service.probe(service.defaultUrl);
    if (result.ok) {
      log.info(
        { service: service.name, url: redactUrl(service.defaultUrl), version: result.version },
        'ready',
      );
      return {
        name: service.name,
        url: service.defaultUrl,
        source: 'started',
        version: result.version,
      };
    }
    if (exited() || Date.now() > deadline) {
      if (!exited()) await stopProcess(pid, 10_000);
      delete state.processes[service.name];
      const how = exited() ? 'exited' : `did not answer within ${plan.readyTimeoutMs} ms`;
      return {
        error: `${binary} ${how} (last probe: ${result.error}); its log ${logFile} ends:\n${tail(logFile)}`,
      };
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function startCompose(
  missing: readonly ServiceDefinition[],
  projectDir: string,
  state: ServicesState,
  log: Logger,
): Promise<ServiceEndpoint[]> {
  const file = join(projectDir, 'compose.yaml');
  const names = missing.map((s) => s.name);
  log.info({ services: names, file }, 'starting with docker compose');
  const code = await run(
    'docker',
    ['compose', '-f', file, 'up', '-d', ...names],
    join(stateDir(projectDir), 'compose.log'),
  );
  if (code !== 0) return [];
  state.compose = { file, services: [...new Set([...(state.compose?.services ?? []), ...names])] };
  const out: ServiceEndpoint[] = [];
  for (const service of missing) {
    const result = await waitFor(() => service.probe(service.defaultUrl), 120_000);
    if (result.ok)
      out.push({
        name: service.name,
        url: service.defaultUrl,
        source: 'docker',
        version: result.version,
      });
  }
  return out;
}

function explain(
  missing: readonly ServiceDefinition[],
  why: ReadonlyMap<ServiceName, string>,
): string {
  const lines = missing.map(
    (s) => `  - ${s.label} (${s.envVar}): ${why.get(s.name) ?? 'not available'}`,
  );
  return [
    'openbell could not find or start every service it needs:',
    ...lines,
    `Install them (Debian/Ubuntu, as root: apt-get install ${missing.map((s) => s.aptPackage).join(' ')}),`,
    `or point ${missing.map((s) => s.envVar).join(' / ')} at running ones, or install Docker with the compose plugin.`,
  ].join('\n');
}

function toUrls(endpoints: readonly ServiceEndpoint[]): ServiceUrls {
  const urls: ServiceUrls = {};
  for (const e of endpoints) {
    if (e.name === 'redis') urls.redisUrl = e.url;
    if (e.name === 'prometheus') urls.prometheusUrl = e.url;
    if (e.name === 'rabbitmq') {
      urls.amqpUrl = e.url;
      urls.rabbitmqManagementUrl = managementUrlFor(e.url);
    }
  }
  return urls;
}

/** Stops what the services script started (by pid, after checking it is still ours), and nothing else. */
export async function stopServices(projectDir: string, log: Logger): Promise<void> {
  const dir = stateDir(projectDir);
  const state = readState(dir);
  for (const name of Object.keys(state.processes).reverse() as ServiceName[]) {
    const started = state.processes[name]!;
    if (isOurProcess(started.pid, started.marker)) {
      const how = await stopProcess(started.pid, 30_000);
      log.info({ service: name, pid: started.pid, how }, 'stopped');
    } else {
      log.info({ service: name, pid: started.pid }, 'already gone');
    }
    delete state.processes[name];
  }
  if (state.compose !== undefined) {
    await run(
      'docker',
      ['compose', '-f', state.compose.file, 'stop', ...state.compose.services],
      join(dir, 'compose.log'),
    );
    log.info({ services: state.compose.services }, 'stopped compose services');
    delete state.compose;
  }
  writeState(dir, state);
}
