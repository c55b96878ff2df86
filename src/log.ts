// Logging: one JSON object per line on stderr, and a guard that logs a recurring failure once per cause
// (not once per request or per scrape) until that cause clears.

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

/** Lines like {"time":"…","level":"warn","msg":"…",…fields}. */
export function jsonLogger(out: { write(text: string): unknown } = process.stderr, minLevel: LogLevel = "info"): Logger {
  const rank: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
  return {
    log(level, message, fields) {
      if (rank[level] < rank[minLevel]) return;
      // One JSON object per line: control characters in any value are escaped, and a field cannot
      // overwrite time, level or msg (they are written first and again last).
      const head = { time: new Date().toISOString(), level, msg: message };
      out.write(`${JSON.stringify({ ...head, ...fields, ...head })}\n`);
    },
  };
}

/** Keeps what was logged, for tests and for `/v1/state`-style introspection. */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; message: string; fields?: Record<string, unknown> }[] = [];

  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level, message, fields });
  }
}

export const silentLogger: Logger = { log() {} };

/**
 * Logs a failure the first time its cause appears for a subject and stays quiet while it persists;
 * `clear` (when the subject recovers) logs the recovery and re-arms the cause.
 */
export class OncePerCause {
  private readonly active = new Map<string, string>();

  constructor(private readonly logger: Logger) {}

  /** Returns true when this call logged (a new cause for this subject). */
  fail(subject: string, cause: string, message: string, fields?: Record<string, unknown>): boolean {
    if (this.active.get(subject) === cause) return false;
    this.active.set(subject, cause);
    this.logger.log("warn", message, { subject, cause, ...fields });
    return true;
  }

  clear(subject: string, message: string, fields?: Record<string, unknown>): void {
    const cause = this.active.get(subject);
    if (cause === undefined) return;
    this.active.delete(subject);
    this.logger.log("info", message, { subject, previousCause: cause, ...fields });
  }

  /** Forget a subject that no longer exists (a removed pod) without logging. */
  forget(subject: string): void {
    this.active.delete(subject);
  }
}
