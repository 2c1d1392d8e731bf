import { JSONPath } from 'jsonpath-plus';

/** A piece of a path template: literal text, or an expression translated for jsonpath-plus. */
export type TemplateSegment = { kind: 'text'; text: string } | { kind: 'path'; path: string };

/** A json_exporter path (a Kubernetes JSONPath template), compiled once at config load. */
export interface PathTemplate {
  /** The template as configured, e.g. `'planet-{ .location }'`. */
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Compiles a Kubernetes JSONPath template (text with `{…}` expressions, as json_exporter reads
 * paths and labels) into segments jsonpath-plus evaluates; throws on what it cannot translate.
 */
export function parsePathTemplate(source: string): PathTemplate {
  const segments: TemplateSegment[] = [];
  let text = '';
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c !== '{') {
      text += c;
      i++;
      continue;
    }
    const end = closing(source, i, '{', '}');
    if (text !== '') segments.push({ kind: 'text', text });
    text = '';
    segments.push({ kind: 'path', path: translateExpression(source.slice(i + 1, end)) });
    i = end + 1;
  }
  if (text !== '') segments.push({ kind: 'text', text });
  return { source, segments };
}

/**
 * Translates one Kubernetes JSONPath expression (the inside of `{…}`: `.a.b`, `$`, `@`,
 * `.items[*].name`, `..x`, `.a\.b`, filters `[?(@.x == "y")]`) into jsonpath-plus syntax.
 */
export function translateExpression(expression: string): string {
  const expr = expression.trim();
  if (expr === '') throw new Error('empty expression {}');
  if (/^(range|end)\b/.test(expr) || expr.startsWith('"') || expr.startsWith("'"))
    throw new Error(`"{${expr}}": range, end and string literals are not supported`);
  let rest = expr;
  if (expr.startsWith('$') || expr.startsWith('@')) rest = expr.slice(1);
  else if (!expr.startsWith('.') && !expr.startsWith('[')) rest = `.${expr}`;
  let out = '$';
  let i = 0;
  while (i < rest.length) {
    const c = rest[i]!;
    if (c === '[') {
      const end = closing(rest, i, '[', ']');
      const bracket = rest.slice(i, end + 1);
      assertFilter(bracket);
      out += bracket;
      i = end + 1;
    } else if (c === '.') {
      const recursive = rest[i + 1] === '.';
      i += recursive ? 2 : 1;
      const field = readField(rest, i);
      out += (recursive ? '..' : '') + fieldPart(field.name, recursive);
      i = field.next;
    } else {
      throw new Error(`"{${expr}}": unexpected "${c}"`);
    }
  }
  return out;
}

/** Thrown from jsonpath-plus's match callback to stop a search that found enough. */
class EnoughMatches extends Error {}

/**
 * The values `path` (jsonpath-plus syntax) selects in `json`, at most `limit` of them: the search
 * stops at the `limit`-th match, so `limit` results may mean more were there. None when `json`
 * is null or absent.
 */
export function evaluatePath(path: string, json: unknown, limit = Infinity): unknown[] {
  if (path === '$') return json === undefined || limit < 1 ? [] : [json];
  if (json === null || typeof json !== 'object' || limit < 1) return [];
  // jsonpath-plus gathers every match before it returns; taking them from its callback and
  // stopping there keeps a huge document from building a huge result. ignoreEvalErrors: a filter
  // reading a field an element lacks selects nothing (as in Kubernetes JSONPath) instead of
  // failing the whole path.
  const found: unknown[] = [];
  const callback = (value: unknown): void => {
    found.push(value);
    if (found.length >= limit) throw new EnoughMatches();
  };
  try {
    JSONPath({ path, json, wrap: true, eval: 'safe', ignoreEvalErrors: true, callback });
  } catch (error) {
    if (!(error instanceof EnoughMatches)) throw error;
  }
  return found;
}

/**
 * The values a template selects: a lone expression gives its matches (at most `limit`), plain
 * text gives itself (a static value such as `1`), text mixed with expressions gives the rendered
 * string.
 */
export function selectValues(template: PathTemplate, json: unknown, limit = Infinity): unknown[] {
  const parts = template.segments.filter((s) => s.kind === 'path' || s.text.trim() !== '');
  const only = parts.length === 1 ? parts[0] : undefined;
  if (only?.kind === 'path') return evaluatePath(only.path, json, limit);
  if (only?.kind === 'text') return [only.text.trim()];
  const rendered = renderTemplate(template, json, limit);
  return rendered === undefined ? [] : [rendered];
}

/**
 * Renders a template as a string (a label value): several matches are joined by spaces, as
 * Kubernetes JSONPath prints them, each expression's first `limit` only; `undefined` when an
 * expression selects nothing.
 */
export function renderTemplate(
  template: PathTemplate,
  json: unknown,
  limit = Infinity,
): string | undefined {
  let out = '';
  for (const segment of template.segments) {
    if (segment.kind === 'text') {
      out += segment.text;
      continue;
    }
    const found = evaluatePath(segment.path, json, limit);
    if (found.length === 0) return undefined;
    out += found.map(formatScalar).join(' ');
  }
  return out;
}

/** A JSON value as label text: strings as they are, null as empty, objects as JSON. */
export function formatScalar(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

function readField(text: string, start: number): { name: string; next: number } {
  let name = '';
  let i = start;
  while (i < text.length && text[i] !== '.' && text[i] !== '[') {
    // Kubernetes JSONPath escapes a dot inside a field name: `.labels.app\.kubernetes\.io/name`.
    if (text[i] === '\\' && i + 1 < text.length) i++;
    name += text[i];
    i++;
  }
  return { name, next: i };
}

function fieldPart(name: string, recursive: boolean): string {
  if (name === '') return '';
  if (name === '*' || IDENTIFIER.test(name)) return recursive ? name : `.${name}`;
  return `['${name.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;
}

/** Index of the bracket closing the one at `start`, skipping quoted text and nested pairs. */
function closing(text: string, start: number, open: string, close: string): number {
  let depth = 0;
  let quote: string | undefined;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (quote !== undefined) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === open) depth++;
    else if (c === close && --depth === 0) return i;
  }
  throw new Error(`"${text}": unbalanced "${open}"`);
}

/**
 * Checks a filter's syntax now rather than on the first scrape: it is run on one empty element,
 * where only reading a missing field may fail (and selects nothing at scrape time).
 */
function assertFilter(bracket: string): void {
  if (!bracket.startsWith('[?')) return;
  try {
    JSONPath({ path: `$${bracket}`, json: [{}], wrap: true, eval: 'safe' });
  } catch (error) {
    const message = (error as Error).message;
    if (!message.includes('Cannot read properties of'))
      throw new Error(`filter ${bracket}: ${message}`, { cause: error });
  }
}
