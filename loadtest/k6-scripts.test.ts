import { readdirSync, readFileSync } from 'node:fs';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// k6 is not installed where the tests run; these checks read the suites' syntax so a suite cannot
// lose its thresholds, its default function, or point a threshold at a metric it never creates
// (which k6 refuses at start-up) without a failing test. Types are checked by `npm run typecheck`.

/** k6's built-in metrics a threshold may name. */
const BUILTIN_METRICS = new Set([
  'checks',
  'data_received',
  'data_sent',
  'dropped_iterations',
  'iteration_duration',
  'iterations',
  'vus',
  'vus_max',
  'http_req_blocked',
  'http_req_connecting',
  'http_req_duration',
  'http_req_failed',
  'http_req_receiving',
  'http_req_sending',
  'http_req_tls_handshaking',
  'http_req_waiting',
  'http_reqs',
  'ws_connecting',
  'ws_msgs_received',
  'ws_msgs_sent',
  'ws_ping',
  'ws_session_duration',
  'ws_sessions',
]);

const CUSTOM_METRIC_CLASSES = new Set(['Counter', 'Gauge', 'Rate', 'Trend']);

const dir = new URL('./', import.meta.url);
const suites = readdirSync(dir)
  .filter((name) => name.endsWith('.k6.ts'))
  .sort();

function parse(name: string): ts.SourceFile {
  const text = readFileSync(new URL(name, dir), 'utf8');
  return ts.createSourceFile(name, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
}

function hasModifier(node: ts.Node, kind: ts.SyntaxKind): boolean {
  return ts.canHaveModifiers(node) && (ts.getModifiers(node) ?? []).some((m) => m.kind === kind);
}

function unwrap(node: ts.Expression): ts.Expression {
  let current = node;
  while (
    ts.isSatisfiesExpression(current) ||
    ts.isAsExpression(current) ||
    ts.isParenthesizedExpression(current)
  ) {
    current = current.expression;
  }
  return current;
}

function propertyName(property: ts.ObjectLiteralElementLike): string | undefined {
  const name = property.name;
  return name !== undefined && (ts.isIdentifier(name) || ts.isStringLiteralLike(name))
    ? name.text
    : undefined;
}

/** The object literal of `export const options = {…}`, if the file has one. */
function exportedOptions(file: ts.SourceFile): ts.ObjectLiteralExpression | undefined {
  for (const statement of file.statements) {
    if (!ts.isVariableStatement(statement)) continue;
    if (!hasModifier(statement, ts.SyntaxKind.ExportKeyword)) continue;
    for (const declaration of statement.declarationList.declarations) {
      if (!ts.isIdentifier(declaration.name) || declaration.name.text !== 'options') continue;
      const value = declaration.initializer && unwrap(declaration.initializer);
      if (value !== undefined && ts.isObjectLiteralExpression(value)) return value;
    }
  }
  return undefined;
}

/** `thresholds` of the options: metric selector → the expressions' source text. */
function thresholds(options: ts.ObjectLiteralExpression): Map<string, string[]> | undefined {
  const property = options.properties.find((p) => propertyName(p) === 'thresholds');
  if (property === undefined || !ts.isPropertyAssignment(property)) return undefined;
  const value = unwrap(property.initializer);
  if (!ts.isObjectLiteralExpression(value)) return undefined;
  const result = new Map<string, string[]>();
  for (const entry of value.properties) {
    const name = propertyName(entry);
    if (name === undefined || !ts.isPropertyAssignment(entry)) continue;
    const list = unwrap(entry.initializer);
    result.set(
      name,
      ts.isArrayLiteralExpression(list) ? list.elements.map((e) => e.getText()) : [],
    );
  }
  return result;
}

function hasDefaultFunction(file: ts.SourceFile): boolean {
  return file.statements.some(
    (s) =>
      (ts.isFunctionDeclaration(s) &&
        hasModifier(s, ts.SyntaxKind.ExportKeyword) &&
        hasModifier(s, ts.SyntaxKind.DefaultKeyword)) ||
      (ts.isExportAssignment(s) && !s.isExportEquals),
  );
}

/** Names of the metrics the file creates with `new Counter('name')` and its siblings. */
function customMetrics(file: ts.SourceFile): Set<string> {
  const names = new Set<string>();
  const visit = (node: ts.Node): void => {
    if (
      ts.isNewExpression(node) &&
      ts.isIdentifier(node.expression) &&
      CUSTOM_METRIC_CLASSES.has(node.expression.text) &&
      node.arguments?.[0] !== undefined &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      names.add(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return names;
}

describe('k6 suites', () => {
  it('include the feed and endpoints suites', () => {
    expect(suites).toEqual(expect.arrayContaining(['endpoints.k6.ts', 'feed.k6.ts']));
  });

  describe.each(suites)('%s', (name) => {
    const file = parse(name);

    it('exports a default function', () => {
      expect(hasDefaultFunction(file)).toBe(true);
    });

    it('exports options with thresholds, each with at least one expression', () => {
      const options = exportedOptions(file);
      expect(options, 'export const options = {…}').toBeDefined();
      const found = thresholds(options!);
      expect(found, 'options.thresholds = {…}').toBeDefined();
      expect(found!.size).toBeGreaterThan(0);
      for (const [metric, expressions] of found!) {
        expect(expressions, `thresholds of ${metric}`).not.toHaveLength(0);
      }
    });

    it('puts thresholds only on metrics k6 has or the suite creates', () => {
      const known = new Set([...BUILTIN_METRICS, ...customMetrics(file)]);
      const found = thresholds(exportedOptions(file)!)!;
      for (const selector of found.keys()) {
        expect([...known], `threshold ${selector}`).toContain(selector.replace(/\{.*$/, ''));
      }
    });
  });
});
