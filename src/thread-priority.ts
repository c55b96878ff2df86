// A thread's own priority. On Linux every thread is a task with a nice value of its own: setpriority on
// its thread id (read from /proc/thread-self) changes that thread alone. Elsewhere a thread keeps the
// process's priority.

import { readlinkSync } from "node:fs";
import { getPriority, setPriority } from "node:os";

/**
 * Lowers the calling thread's priority to nice value `nice` (0 to 19), never raising it: a thread
 * starts at its creator's nice, and going below that needs a privilege (a process started under
 * `nice -n 15` would have every such call fail). Does nothing where a thread has no priority of its own
 * (not Linux), or on the main thread, whose id is the process's.
 */
export function setThreadNice(nice: number): void {
  let tid: number;
  try {
    tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
  } catch {
    return;
  }
  if (Number.isInteger(tid) && tid !== process.pid) setPriority(tid, Math.max(nice, getPriority(tid)));
}
