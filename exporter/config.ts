import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parsePathTemplate } from './json-path.ts';

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Families every probe response carries; a module may not define them. */
export const PROBE_FAMILIES: readonly string[] = [
  'probe_success',
  'probe_duration_seconds',
  'probe_http_status_code',
  'probe_duplicate_series',
  'probe_skipped_values',
];

const path = z.string().superRefine((text, ctx) => {
  try {
    parsePathTemplate(text);
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `bad path: ${(error as Error).message}` });
  }
});
const labelName = z
  .string()
  .regex(LABEL_NAME, { error: 'expected a label name ([a-zA-Z_][a-zA-Z0-9_]*)' })
  .refine((name) => !name.startsWith('__'), { error: 'label names starting __ are reserved' });
const valueMap = z.record(z.string(), z.number({ error: 'expected a number' }));
const scale = z.number().refine((n) => Number.isFinite(n) && n !== 0, {
  error: 'expected a finite, non-zero number',
});
const valueSpec = z.union(
  [
    path,
    z.number(),
    z.strictObject({
      path: z.union([path, z.number()]),
      help: z.string().optional(),
      valueMap: valueMap.optional(),
      scale: scale.optional(),
    }),
  ],
  { error: 'expected a path, a number or {path, help?, valueMap?, scale?}' },
);

const metric = z
  .strictObject({
    name: z
      .string()
      .regex(METRIC_NAME, { error: 'expected a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)' }),
    type: z.enum(['value', 'object'], { error: 'expected value|object' }).default('value'),
    help: z.string().optional(),
    path,
    labels: z
      .record(labelName, z.union([z.string(), z.number(), z.boolean()]).transform(String))
      .default({}),
    values: z.record(z.string().regex(/^[a-zA-Z0-9_:]+$/), valueSpec).optional(),
    valuetype: z
      .enum(['gauge', 'counter', 'untyped'], { error: 'expected gauge|counter|untyped' })
      .default('untyped'),
    epochTimestamp: path.optional(),
    valueconverter: z.record(z.string(), z.record(z.string(), z.number())).optional(),
    allow_missing_key: z.boolean().default(false),
    engine: z.literal('jsonpath', { error: 'expected jsonpath (CEL is not supported)' }).optional(),
    valueMap: valueMap.optional(),
    keyLabel: labelName.optional(),
    scale: scale.optional(),
  })
  .superRefine((m, ctx) => {
    const issue = (key: string, message: string): void =>
      void ctx.addIssue({ code: 'custom', path: [key], message });
    if (m.type === 'value' && m.values !== undefined)
      issue('values', 'only for type: object (a value metric reads path)');
    if (m.type === 'value' && m.keyLabel !== undefined) issue('keyLabel', 'only for type: object');
    if (m.type === 'object' && m.values === undefined && m.keyLabel === undefined)
      issue('values', 'required for type: object (or set keyLabel)');
    if (m.keyLabel !== undefined && m.keyLabel in m.labels)
      issue('keyLabel', `"${m.keyLabel}" is also a key of labels`);
    for (const family of familyNames(m)) {
      if (!METRIC_NAME.test(family)) issue('name', `"${family}" is not a valid metric name`);
      if (PROBE_FAMILIES.includes(family))
        issue('name', `"${family}" is reserved for the exporter`);
    }
  });

const httpClientConfig = z
  .strictObject({
    basic_auth: z
      .strictObject({
        username: z.string().default(''),
        password: z.string().optional(),
        password_file: z.string().optional(),
      })
      .refine((b) => b.password === undefined || b.password_file === undefined, {
        error: 'at most one of password and password_file',
      })
      .optional(),
    authorization: z
      .strictObject({
        type: z.string().default('Bearer'),
        credentials: z.string().optional(),
        credentials_file: z.string().optional(),
      })
      .refine((a) => a.credentials === undefined || a.credentials_file === undefined, {
        error: 'at most one of credentials and credentials_file',
      })
      .optional(),
    bearer_token: z.string().optional(),
    bearer_token_file: z.string().optional(),
    tls_config: z
      .strictObject({
        ca_file: z.string().optional(),
        cert_file: z.string().optional(),
        key_file: z.string().optional(),
        server_name: z.string().optional(),
        insecure_skip_verify: z.boolean().default(false),
        min_version: z.enum(['TLS10', 'TLS11', 'TLS12', 'TLS13']).optional(),
      })
      .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), {
        error: 'cert_file and key_file go together',
      })
      .optional(),
    follow_redirects: z.boolean().default(true),
  })
  .refine(
    (h) =>
      [h.basic_auth, h.authorization, h.bearer_token ?? h.bearer_token_file].filter(
        (x) => x !== undefined,
      ).length <= 1,
    { error: 'at most one of basic_auth, authorization, bearer_token(_file)' },
  );

const moduleConfig = z
  .strictObject({
    metrics: z.array(metric).min(1, { error: 'expected at least one metric' }),
    headers: z.record(z.string(), z.string()).default({}),
    http_client_config: httpClientConfig.default({ follow_redirects: true }),
    body: z
      .strictObject({
        content: z.string(),
        templatize: z
          .literal(false, { error: 'templatize (Go templates) is not supported' })
          .optional(),
      })
      .optional(),
    valid_status_codes: z.array(z.int().min(100).max(599)).min(1).optional(),
    timeoutMs: z.int().positive().optional(),
    /**
     * openbell's: regular expressions, each matched against the whole target URL; when set, a
     * probe of any other target is refused (403), so the module's credentials go nowhere else.
     */
    allowedTargets: z
      .array(z.string().refine(isRegExp, { error: 'expected a regular expression' }))
      .min(1)
      .optional(),
  })
  .superRefine((m, ctx) => {
    const types = new Map<string, { type: string; index: number }>();
    m.metrics.forEach((metric, index) => {
      for (const family of familyNames(metric)) {
        const seen = types.get(family);
        if (seen === undefined) types.set(family, { type: metric.valuetype, index });
        else if (seen.type !== metric.valuetype)
          ctx.addIssue({
            code: 'custom',
            path: ['metrics', index, 'valuetype'],
            message: `"${family}" is already a ${seen.type} (metrics[${seen.index}])`,
          });
      }
    });
  });

const exporterConfig = z.strictObject({
  modules: z.record(z.string().min(1), moduleConfig),
});

/** A validated exporter config: json_exporter's `modules:` map plus openbell's keys (README.md). */
export type ExporterConfig = z.output<typeof exporterConfig>;
/** One module of {@link ExporterConfig}. */
export type ModuleConfig = z.output<typeof moduleConfig>;
/** One metric of a {@link ModuleConfig}. */
export type MetricConfig = z.output<typeof metric>;
/** A module's `http_client_config`. */
export type HttpClientConfig = z.output<typeof httpClientConfig>;

/**
 * Parses `--allowed-targets`: regular expressions separated by white space (a URL has none);
 * throws naming the one that does not compile, or when there is none.
 */
export function parseAllowedTargets(text: string): string[] {
  const sources = text.split(/\s+/).filter((source) => source !== '');
  if (sources.length === 0) throw new Error('expected at least one regular expression');
  for (const source of sources)
    if (!isRegExp(source)) throw new Error(`${JSON.stringify(source)}: not a regular expression`);
  return sources;
}

function isRegExp(source: string): boolean {
  try {
    new RegExp(source);
    return true;
  } catch {
    // The message of a SyntaxError adds nothing to "not a regular expression".
    return false;
  }
}

/** The metric families a metric config produces: its name, or `<name>_<value key>` per value. */
export function familyNames(m: Pick<MetricConfig, 'name' | 'type' | 'values'>): string[] {
  if (m.type === 'object' && m.values !== undefined)
    return Object.keys(m.values).map((key) => `${m.name}_${key}`);
  return [m.name];
}

/**
 * Validates an exporter config (the parsed YAML); throws an Error listing every problem as
 * `<key path>: <what was expected>`, e.g. `modules.openbell.metrics[2].valuetype: expected
 * gauge|counter|untyped`.
 */
export function parseExporterConfig(input: unknown): ExporterConfig {
  const result = exporterConfig.safeParse(input);
  if (result.success) return result.data;
  const lines = result.error.issues.flatMap(formatIssue);
  throw new Error(`invalid exporter config:\n  ${lines.join('\n  ')}`);
}

/** A config file read and validated, with the folder its relative file paths start from. */
export interface LoadedConfig {
  config: ExporterConfig;
  /** Folder of the config file: `ca_file`, `password_file`… are resolved against it. */
  baseDir: string;
}

/** Reads, parses and validates a YAML config file; errors name the file. */
export function loadExporterConfig(file: string): LoadedConfig {
  let input: unknown;
  try {
    input = parseYaml(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  }
  try {
    return { config: parseExporterConfig(input), baseDir: dirname(resolve(file)) };
  } catch (error) {
    throw new Error(`${file}: ${(error as Error).message}`, { cause: error });
  }
}

function formatIssue(issue: z.core.$ZodIssue): string[] {
  const at = formatKeyPath(issue.path);
  if (issue.code === 'unrecognized_keys')
    return issue.keys.map((key) => `${formatKeyPath([...issue.path, key])}: unknown key`);
  if (issue.code === 'invalid_key')
    return [`${at}: invalid key: ${issue.issues.map((i) => i.message).join('; ')}`];
  return [`${at === '' ? '(root)' : at}: ${issue.message}`];
}

/** `['modules', 'a', 'metrics', 2, 'valuetype']` → `modules.a.metrics[2].valuetype`. */
export function formatKeyPath(keys: readonly PropertyKey[]): string {
  return keys
    .map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`))
    .join('');
}
