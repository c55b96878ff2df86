// Errors with stable codes. Every failure headroom reports carries one of these codes; the server maps
// codes to HTTP statuses in one table.

export type ErrorCode =
  | "CONFIG_INVALID"
  | "CONFIG_UNREADABLE"
  | "SNAPSHOT_INVALID"
  | "SNAPSHOT_VERSION_MISMATCH"
  | "BATCH_TOO_LARGE"
  | "POOL_TOO_LARGE"
  | "REQUEST_INVALID"
  | "KERNEL_UNAVAILABLE"
  | "UNKNOWN_LEVEL"
  | "UNKNOWN_POOL"
  | "NO_CANDIDATES"
  | "SHED"
  | "OVERLOADED"
  | "WORKER_FAILED"
  | "NOT_READY"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "BODY_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE";

/** The user and password of a URL (scheme://user:password@host). */
const URL_USERINFO = /(\b[a-z][a-z0-9+.-]*:\/\/)[^/?#@\s"]*@/gi;

/** A text with every URL's user and password shown as `***`: messages and logs never carry them. */
export function withoutUrlCredentials(text: string): string {
  return text.replace(URL_USERINFO, "$1***@");
}

/** A value's text as an error message shows it: at most 60 characters, the rest cut to "...". */
export function shortened(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export class HeadroomError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = "HeadroomError";
    this.code = code;
    this.details = details;
  }
}

export class ConfigError extends HeadroomError {
  /** One line per problem, each naming the field and the value found. */
  readonly problems: string[];

  constructor(problems: string[], code: "CONFIG_INVALID" | "CONFIG_UNREADABLE" = "CONFIG_INVALID") {
    super(code, `invalid configuration:\n  - ${problems.join("\n  - ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export class SnapshotError extends HeadroomError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("SNAPSHOT_INVALID", message, details);
    this.name = "SnapshotError";
  }
}

export class RequestError extends HeadroomError {
  constructor(message: string, details?: Record<string, unknown>) {
    super("REQUEST_INVALID", message, details);
    this.name = "RequestError";
  }
}

export class SnapshotVersionError extends HeadroomError {
  constructor(loaded: number, expected: number) {
    super("SNAPSHOT_VERSION_MISMATCH", `kernel holds snapshot version ${loaded}, the batch expects ${expected}`, {
      loaded,
      expected,
    });
    this.name = "SnapshotVersionError";
  }
}

export class BatchTooLargeError extends HeadroomError {
  constructor(size: number, capacity: number) {
    super("BATCH_TOO_LARGE", `batch of ${size} requests exceeds the kernel's capacity of ${capacity}`, { size, capacity });
    this.name = "BatchTooLargeError";
  }
}

/** What a thrown value says: an Error's message, anything else as a string. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
