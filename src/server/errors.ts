// The one table from error codes to HTTP statuses, and the error body every endpoint answers with:
// {"error":{"code":"…","message":"…"}}.

import { HeadroomError, type ErrorCode } from "../errors.js";

/** What the wire carries: a HeadroomError code, or INTERNAL for a bug that escaped as another exception. */
export type WireCode = ErrorCode | "INTERNAL";

/** Every code has a status, so a new code does not compile until it is placed here. */
export const STATUS_OF_CODE: Readonly<Record<WireCode, number>> = Object.freeze({
  REQUEST_INVALID: 400,
  UNKNOWN_LEVEL: 400,
  UNKNOWN_POOL: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  SHED: 429,
  NO_CANDIDATES: 503,
  OVERLOADED: 503,
  WORKER_FAILED: 503,
  NOT_READY: 503,
  KERNEL_UNAVAILABLE: 503,
  // The engine splits batches and validates snapshots and configuration itself; these reaching a
  // client mean a bug, not a bad request.
  BATCH_TOO_LARGE: 500,
  POOL_TOO_LARGE: 500,
  SNAPSHOT_INVALID: 500,
  SNAPSHOT_VERSION_MISMATCH: 500,
  CONFIG_INVALID: 500,
  CONFIG_UNREADABLE: 500,
  INTERNAL: 500,
});

/** uWebSockets.js takes the whole status line. */
const REASONS: Readonly<Record<number, string>> = {
  200: "OK",
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

export function statusLine(status: number): string {
  return `${status} ${REASONS[status] ?? ""}`.trimEnd();
}

export interface WireError {
  code: WireCode;
  message: string;
}

/** What a request or a stream pick that arrives after close() began is answered. */
export const SHUTTING_DOWN: Readonly<WireError> = Object.freeze({ code: "NOT_READY", message: "the server is shutting down" });

/** The `{"error":{…}}` body for a code and message. */
export function errorBody(error: WireError): { error: WireError } {
  return { error: { code: error.code, message: error.message } };
}

/** Any thrown value as a wire error; only HeadroomErrors keep their message (others may carry internals). */
export function toWireError(err: unknown): WireError {
  if (err instanceof HeadroomError) return { code: err.code, message: err.message };
  return { code: "INTERNAL", message: "internal error; the server log has the details" };
}
