import { describe, expect, it } from 'vitest';
import { redactUrl } from './redact.ts';

describe('redactUrl', () => {
  it('hides passwords and secret-looking query values', () => {
    expect(redactUrl('amqp://user:hunter2@host:5672/vh')).toBe('amqp://user:***@host:5672/vh');
    expect(redactUrl('redis://:s3cret@127.0.0.1:6379/0')).toBe('redis://:***@127.0.0.1:6379/0');
    expect(redactUrl('wss://socket.massive.com/stocks?apiKey=abc&x=1')).toBe(
      'wss://socket.massive.com/stocks?apiKey=***&x=1',
    );
  });

  it('leaves a URL without secrets as it is and never echoes a non-URL', () => {
    expect(redactUrl('http://127.0.0.1:9090/')).toBe('http://127.0.0.1:9090/');
    expect(redactUrl('my-api-key-123')).toBe('<invalid url>');
  });
});
