// A thread's own priority. On Linux every thread is a task with a nice value of its own: setpriority on
// its thread id (read from /proc/thread-self) changes that thread alone. Elsewhere a thread keeps the
// process's priority.

import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";

/**
 * Sets the calling thread's nice value (0 to 19: raising it needs no privilege). Does nothing where a
 * thread has no priority of its own (not Linux), or on the main thread, whose id is the process's.
 */
export function setThreadNice(nice: number): void {
  let tid: number;
  try {
    tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
  } catch {
    return;
  }
  if (Number.isInteger(tid) && tid !== process.pid) setPriority(tid, nice);
}
