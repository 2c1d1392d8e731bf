/** Short, stable error codes, usable as metric labels. */
export type ErrorCode = 'config' | 'service';

/** Base class of every error openbell throws on purpose. */
export class OpenbellError extends Error {
  /** Stable code for branching and for metric labels. */
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Invalid configuration: names the offending field and what it allows. */
export class ConfigError extends OpenbellError {
  /** Dotted path of the offending field, e.g. `transport.queueTtlMs`. */
  readonly field: string;

  constructor(field: string, message: string, options?: { cause?: unknown }) {
    super('config', `${field}: ${message}`, options);
    this.field = field;
  }
}

/** A backing service (Redis, RabbitMQ, Prometheus) is missing or unusable. */
export class ServiceError extends OpenbellError {
  /** The service concerned, e.g. `redis`. */
  readonly service: string;

  constructor(service: string, message: string, options?: { cause?: unknown }) {
    super('service', `${service}: ${message}`, options);
    this.service = service;
  }
}
