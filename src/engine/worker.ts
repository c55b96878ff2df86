// A Piscina worker: one WASM kernel per pool, fed from the pool's shared snapshot. A task is a batch of
// requests in a compact typed-array encoding plus the pool's id; the kernel copies a new snapshot
// version (or only the in-flight loads) before picking, never per request. The kernel is kept until
// the pool's buffer is replaced (a task's buffer is a new object each time: compared by its id). A
// task whose buffer was replaced before it ran (the pool outgrew it) is answered null: the engine picks
// that batch again on the main thread, on the pool's current snapshot.

import { move, workerData } from "piscina";
import { RetiredSnapshotError, SharedSnapshotReader } from "../kernel/shared-snapshot.js";
import type { OptimizerParams, TopologyParams } from "../kernel/types.js";
import { WasmKernel } from "../kernel/wasm.js";
import { setThreadNice } from "../thread-priority.js";
import { decodeRequests, type WorkerData, type WorkerTask } from "./worker-protocol.js";

interface PoolKernel {
  reader: SharedSnapshotReader;
  kernel: WasmKernel;
  paramsVersion: number;
}

const kernels = new Map<string, PoolKernel>();

// Below the main thread (workers.nice): the main thread reads and writes every socket, and a frame's
// answer waits for it; when the two cores are both wanted it should get one first. Outside a Piscina
// worker (a test importing pickRows) there is no workerData: nice 0 leaves the thread as it is.
setThreadNice((workerData as WorkerData | undefined)?.nice ?? 0);

/**
 * The task's batch: the result rows moved to the main thread (not cloned: the rows are one buffer,
 * where results as objects cost both threads a clone each), or null (see above).
 */
export default function pickBatch(task: WorkerTask): Float64Array | null {
  const rows = pickRows(task);
  return rows === null ? null : (move(rows) as Float64Array);
}

/** The batch's result rows (kernel/wasm.ts, readResults), or null when the task's buffer was retired. */
export function pickRows(task: WorkerTask): Float64Array | null {
  let entry = kernels.get(task.pool);
  const reader = entry !== undefined && entry.reader.reads(task.buffer) ? entry.reader : new SharedSnapshotReader(task.buffer);
  let read: ReturnType<SharedSnapshotReader["read"]>;
  try {
    read = reader.read();
  } catch (err) {
    // Checked before a kernel is built for this buffer: a retired one gets none.
    if (err instanceof RetiredSnapshotError) return null;
    throw err;
  }
  if (entry === undefined || entry.reader !== reader) {
    entry = {
      reader,
      kernel: new WasmKernel(task.params as OptimizerParams, task.topology as TopologyParams, { batchCapacity: task.batchCapacity }),
      paramsVersion: task.paramsVersion,
    };
    kernels.set(task.pool, entry);
  } else if (entry.paramsVersion !== task.paramsVersion) {
    entry.kernel.setParams(task.params as OptimizerParams, task.topology as TopologyParams);
    entry.paramsVersion = task.paramsVersion;
  }
  const { snapshot, changed } = read;
  if (changed === "all") entry.kernel.loadSnapshot(snapshot);
  else if (changed === "loads") entry.kernel.updateLoads(snapshot);
  const rows = entry.kernel.pickRows(decodeRequests(task.requests), snapshot.version);
  // Until the main thread publishes this batch's loads (it applies them as the answer arrives), the
  // next batch of the pool starts from them here; once published, the next read replaces them.
  entry.kernel.keepBatchLoads();
  return rows;
}
