/**
 * Returns `url` with any password, and any query value whose name suggests a secret, replaced by
 * `***`, so the result is safe to log. Text that is not a URL is returned as `<invalid url>`
 * rather than echoed, since it may itself be a secret.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // Not a URL: echoing it could leak whatever was passed by mistake (often a key).
    return '<invalid url>';
  }
  if (parsed.password !== '') parsed.password = '***';
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) parsed.searchParams.set(name, '***');
  }
  return parsed.toString();
}

const SECRET_PARAM = /key|token|secret|pass|auth|sig/i;
