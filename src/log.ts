// JSON logs (pino). Secrets never reach a log line: request logging records paths without query strings and never
// headers, and token values are never passed to the logger.
import { pino } from 'pino';

export interface Logger {
  trace?(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export function createLogger(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: ['*.authorization', '*.token', '*.password', 'token', 'password'], censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    destination ?? pino.destination(2),
  );
}
