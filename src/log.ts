// JSON logs (pino). Secrets never reach a log line: request logging records paths without query strings and never
// headers, and token values are never passed to the logger.
import { pino } from 'pino';

/** One access log line: the request line without its query, the answer, and nothing the client sent beyond that. */
export interface AccessLine {
  method: string | undefined;
  path: string;
  status: number;
  ms: number;
  ip: string | undefined;
  /** the error code of a failed request */
  failure?: string;
  /** the connection closed before the whole answer was sent */
  aborted?: boolean;
}

export interface Logger {
  trace?(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** whether a line at `level` would be written (pino); callers skip building objects for lines that would not */
  isLevelEnabled?(level: string): boolean;
  /** the access log line of a request, at info (msg "request"); without it, callers use info() */
  access?(line: AccessLine): void;
}

export function createLogger(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent', destination?: NodeJS.WritableStream): Logger {
  // Asynchronous: a line never waits for its write(2), and the lines logged while one write is under way go out
  // together in the next (under load, one write for many access log lines instead of one per request). Nothing is
  // dropped (no maxLength), and pino flushes what is pending when the process exits.
  const dest = destination ?? pino.destination({ dest: 2, sync: false });
  const log = pino(
    {
      level,
      base: undefined,
      redact: { paths: ['*.authorization', '*.token', '*.password', 'token', 'password'], censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    dest,
  );
  // Access log lines have fixed fields that never hold a secret (AccessLine), so they skip the redaction pass, which
  // costs more than the rest of the line. Same level, same destination, same line format.
  const accessLog = pino({ level, base: undefined }, dest);
  return Object.assign(log, { access: (line: AccessLine) => accessLog.info(line, 'request') });
}
