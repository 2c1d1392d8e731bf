import { parser } from '@prometheus-io/lezer-promql';

type SyntaxNode = ReturnType<typeof parser.parse>['topNode'];

/** One series selector of a PromQL expression. */
export interface PromqlSelector {
  /** The metric name, or `undefined` for a selector without one (`{__name__=~"..."}`). */
  metric: string | undefined;
  /** Label matchers as written, e.g. `run=~"lab-1"`. */
  matchers: string[];
  /** The nearest function call around the selector (`rate`, `histogram_quantile`…), if any. */
  enclosingFunction: string | undefined;
  /** Offset of the selector in the expression. */
  from: number;
}

/** What {@link analyzePromql} found in an expression. */
export interface PromqlAnalysis {
  /** Syntax errors, each with its offset; empty when the expression parses. */
  errors: string[];
  selectors: PromqlSelector[];
}

/** The functions that turn a counter into a rate or an increase. */
export const COUNTER_FUNCTIONS: ReadonlySet<string> = new Set(['rate', 'increase', 'irate']);

/** Parses a PromQL expression (no Grafana variables left) and lists its selectors and errors. */
export function analyzePromql(expr: string): PromqlAnalysis {
  const tree = parser.parse(expr);
  const errors: string[] = [];
  const selectors: PromqlSelector[] = [];
  tree.iterate({
    enter: (ref) => {
      if (ref.type.isError) {
        errors.push(
          `syntax error at offset ${ref.from}: ${JSON.stringify(expr.slice(ref.from, ref.from + 20))}`,
        );
      } else if (ref.name === 'VectorSelector') {
        selectors.push(describeSelector(ref.node, expr));
      }
    },
  });
  if (expr.trim() === '') errors.push('empty expression');
  return { errors, selectors };
}

function describeSelector(node: SyntaxNode, expr: string): PromqlSelector {
  const text = (n: SyntaxNode): string => expr.slice(n.from, n.to);
  const name = node.getChild('Identifier');
  const matchers: string[] = [];
  const list = node.getChild('LabelMatchers');
  for (let child = list?.firstChild ?? null; child !== null; child = child.nextSibling) {
    if (child.name === 'UnquotedLabelMatcher' || child.name === 'QuotedLabelMatcher') {
      matchers.push(text(child).replace(/\s+/g, ''));
    }
  }
  let enclosingFunction: string | undefined;
  for (let up = node.parent; up !== null; up = up.parent) {
    if (up.name === 'FunctionCall') {
      const id = up.getChild('FunctionIdentifier');
      enclosingFunction = id === null ? undefined : text(id);
      break;
    }
  }
  return {
    metric: name === null ? undefined : text(name),
    matchers,
    enclosingFunction,
    from: node.from,
  };
}
