import type { ServiceName } from './definitions.ts';
import { SERVICES } from './definitions.ts';
import { stateDir } from './ensure.ts';
import { isOurProcess } from './processes.ts';
import { readState } from './state.ts';

/** One line of `openbell services status`. */
export interface ServiceStatus {
  name: ServiceName;
  state: 'up' | 'down';
  url: string;
  /** Version when up, why not when down; and the pid when the services script started it. */
  detail: string;
}

/** Probes each service at its env URL (or default) without starting anything. */
export async function statusOfServices(
  projectDir: string,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ServiceStatus[]> {
  const state = readState(stateDir(projectDir));
  return Promise.all(
    SERVICES.map(async (service): Promise<ServiceStatus> => {
      const url = env[service.envVar] || service.defaultUrl;
      const result = await service.probe(url);
      const ours = state.processes[service.name];
      const pid =
        ours !== undefined && isOurProcess(ours.pid, ours.marker)
          ? ` (started by openbell, pid ${ours.pid})`
          : '';
      if (!result.ok) return { name: service.name, state: 'down', url, detail: result.error };
      const note = await service.settings?.(url, { fix: false });
      const detail = `${result.version}${pid}${note === undefined ? '' : `; ${note}`}`;
      return { name: service.name, state: 'up', url, detail };
    }),
  );
}
