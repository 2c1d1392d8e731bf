// No PromQL parser here: `openbell check` substitutes with this at run time, where only the
// production dependencies are installed (the lint's parser is a devDependency).

/** Values for the Grafana variables a dashboard query may use, by name without `$`. */
export type GrafanaVariables = Readonly<Record<string, string>>;

/**
 * Replaces Grafana variables (`$name`, `${name}`, `[[name]]`, `${name:format}`) with concrete
 * values. A variable without a value is left in place, where the parser then reports it.
 */
export function substituteVariables(expr: string, values: GrafanaVariables): string {
  return expr.replace(
    /\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g,
    (text, braced?: string, bracketed?: string, bare?: string) => {
      const name = braced ?? bracketed ?? bare ?? '';
      return values[name] ?? text;
    },
  );
}

/** The names of the Grafana variables an expression uses. */
export function variablesIn(expr: string): string[] {
  const names = new Set<string>();
  for (const match of expr.matchAll(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g)) {
    names.add(match[1] ?? match[2] ?? match[3] ?? '');
  }
  return [...names];
}

/**
 * A literal value as it goes inside a PromQL `=~"…"` matcher: regex metacharacters escaped, then
 * backslashes and quotes escaped for the double-quoted string. What `$run` becomes for a check.
 */
export function formatRegexLiteral(value: string): string {
  const regex = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return regex.replace(/["\\]/g, '\\$&');
}
