/** Why a probe failed: the `reason` label of `openbell_exporter_probe_failures_total`. */
export type ProbeFailureReason =
  | 'connection'
  | 'timeout'
  | 'status'
  | 'not_json'
  | 'body_too_large'
  | 'bad_redirect'
  | 'redirect_not_allowed'
  | 'too_many_redirects'
  | 'too_many_series';

/** Every {@link ProbeFailureReason}, in the order they are reported. */
export const PROBE_FAILURE_REASONS: readonly ProbeFailureReason[] = [
  'connection',
  'timeout',
  'status',
  'not_json',
  'body_too_large',
  'bad_redirect',
  'redirect_not_allowed',
  'too_many_redirects',
  'too_many_series',
];

/** Options of a {@link ProbeError}. */
export interface ProbeErrorOptions extends ErrorOptions {
  /** Status of the last response the target gave. @default 0 (none) */
  status?: number;
}

/** A probe failure the exporter recognised; `code` is its reason label. */
export class ProbeError extends Error {
  override readonly name = 'ProbeError';
  /** The reason label. */
  readonly code: ProbeFailureReason;
  /** Status of the last response the target gave; 0 if none. */
  readonly status: number;

  /** Creates the error; `message` says what happened, without credentials. */
  constructor(code: ProbeFailureReason, message: string, options: ProbeErrorOptions = {}) {
    super(message, options);
    this.code = code;
    this.status = options.status ?? 0;
  }
}
