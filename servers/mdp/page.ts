import express, { type Express, type Response } from 'express';
import { fileURLToPath } from 'node:url';

/** The folder of the trader page: plain HTML, JS and CSS, no build step. */
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

/** A `Host` header safe to put in a header value (no `;`, spaces or quotes). */
const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The Content-Security-Policy of the page: nothing but its own scripts, styles and icon, and
 * WebSockets to its own host. `'self'` covers same-host `ws:`/`wss:` in current browsers; the
 * explicit host sources keep older ones working without allowing WebSockets to any host.
 */
export function pageSecurityPolicy(host: string | undefined): string {
  const sockets = host !== undefined && HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    `connect-src 'self'${sockets}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * Serves the live trader page (`/`, `/app.js`, `/style.css`, …) from `public/`. The files are not
 * fingerprinted, so browsers revalidate them every time (a cheap 304 thanks to the ETag) rather
 * than run a stale script against a newer feed.
 */
export function servePage(app: Express): void {
  app.use(
    '/',
    express.static(PUBLIC_DIR, {
      index: 'index.html',
      etag: true,
      lastModified: true,
      fallthrough: true,
      redirect: false,
      setHeaders: (res: Response) => {
        res.setHeader('Cache-Control', 'no-cache');
        res.setHeader('Content-Security-Policy', pageSecurityPolicy(res.req.headers.host));
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('X-Frame-Options', 'DENY');
        res.setHeader('Referrer-Policy', 'no-referrer');
      },
    }),
  );
}
