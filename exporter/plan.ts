import { familyNames, type MetricConfig, type ModuleConfig } from './config.ts';
import { parsePathTemplate, type PathTemplate } from './json-path.ts';
import type { ValueConversion } from './values.ts';

/** A metric family's metadata: its HELP and TYPE lines. */
export interface FamilyInfo {
  name: string;
  help: string;
  type: 'gauge' | 'counter' | 'untyped';
}

/** One sample value a metric reads from each of its items. */
export interface ValuePlan {
  family: string;
  template: PathTemplate;
  conversion: ValueConversion;
}

/** A metric config compiled for evaluation: templates parsed, value maps resolved. */
export interface MetricPlan {
  /** The metric config's name (a value key's family is `<name>_<key>`). */
  name: string;
  type: 'value' | 'object';
  /** Value metrics: the value itself; object metrics: the items. */
  path: PathTemplate;
  labels: readonly { name: string; template: PathTemplate }[];
  /** Object metrics: each key of each selected object becomes an item, its key this label. */
  keyLabel: string | undefined;
  values: readonly ValuePlan[];
  timestamp: PathTemplate | undefined;
  /** json_exporter's `allow_missing_key`: absent or null values are not counted as skipped. */
  allowMissing: boolean;
}

/** A module compiled once at start: what every probe of it evaluates. */
export interface ModulePlan {
  metrics: readonly MetricPlan[];
  /** Every family the module may produce, in config order (the order of the exposition). */
  families: ReadonlyMap<string, FamilyInfo>;
}

const CURRENT = parsePathTemplate('{@}');

/** Compiles a validated module config; its paths were checked by the config schema. */
export function compileModule(module: ModuleConfig): ModulePlan {
  const families = new Map<string, FamilyInfo>();
  const metrics = module.metrics.map((m) => {
    for (const name of familyNames(m)) {
      const spec = m.values?.[name.slice(m.name.length + 1)];
      const help = (typeof spec === 'object' ? spec.help : undefined) ?? m.help ?? name;
      if (!families.has(name)) families.set(name, { name, help, type: m.valuetype });
    }
    return compileMetric(m);
  });
  return { metrics, families };
}

function compileMetric(m: MetricConfig): MetricPlan {
  const base = { valueMap: m.valueMap, scale: m.scale };
  const values: ValuePlan[] =
    m.type === 'value'
      ? [
          {
            family: m.name,
            template: parsePathTemplate(m.path),
            conversion: conversion(m, m.path, base),
          },
        ]
      : m.values === undefined
        ? [{ family: m.name, template: CURRENT, conversion: conversion(m, undefined, base) }]
        : Object.entries(m.values).map(([key, spec]) => {
            const own = typeof spec === 'object' ? spec : { path: spec };
            const source = String(own.path);
            return {
              family: `${m.name}_${key}`,
              template: parsePathTemplate(source),
              conversion: conversion(m, source, {
                valueMap: own.valueMap ?? m.valueMap,
                scale: own.scale ?? m.scale,
              }),
            };
          });
  return {
    name: m.name,
    type: m.type,
    path: parsePathTemplate(m.path),
    labels: Object.entries(m.labels).map(([name, source]) => ({
      name,
      template: parsePathTemplate(source),
    })),
    keyLabel: m.keyLabel,
    values,
    timestamp: m.epochTimestamp === undefined ? undefined : parsePathTemplate(m.epochTimestamp),
    allowMissing: m.allow_missing_key,
  };
}

/** A value's conversion; json_exporter's `valueconverter` is keyed by the value's path text. */
function conversion(
  m: MetricConfig,
  source: string | undefined,
  own: { valueMap?: Record<string, number> | undefined; scale?: number | undefined },
): ValueConversion {
  const converter = source === undefined ? undefined : m.valueconverter?.[source];
  return {
    valueMap: own.valueMap === undefined ? undefined : new Map(Object.entries(own.valueMap)),
    converter:
      converter === undefined
        ? undefined
        : new Map(Object.entries(converter).map(([k, v]) => [k.toLowerCase(), v])),
    scale: own.scale,
  };
}
