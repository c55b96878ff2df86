// The CPUs this process may use. Node's availableParallelism() counts the CPUs of its affinity mask;
// a container's CPU limit is a cgroup quota instead, which Node does not read: in a pod limited to two
// CPUs on a 64-CPU node it answers 64, and a worker pool sized from it oversubscribes the quota. The
// quota is read as Go's automaxprocs and the JVM read it: cgroup v2's cpu.max of the process's cgroup
// and its ancestors, else cgroup v1's cpu.cfs_quota_us over cpu.cfs_period_us. (The npm packages that
// do this have one maintainer and a few dozen downloads a week; this is the whole of it.)

import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { posix } from "node:path";

/**
 * The CPU quota in CPUs (1.5 for "150000 100000"), the smallest set on the process's cgroup or an
 * ancestor; undefined when none is set or the files cannot be read. `root` is the filesystem root the
 * /proc and /sys paths are read under (tests give a directory of their own).
 */
export function cpuQuota(root = "/"): number | undefined {
  const memberships = read(posix.join(root, "proc/self/cgroup"));
  if (memberships === undefined) return undefined;
  let quota: number | undefined;
  // Each line is "hierarchy-id:controllers:path"; the path may hold colons itself.
  for (const line of memberships.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    const found = controllers === "" ? v2Quota(root, path) : controllers.split(",").includes("cpu") ? v1Quota(root, controllers, path) : undefined;
    if (found !== undefined && (quota === undefined || found < quota)) quota = found;
  }
  return quota;
}

/** The CPUs to size thread pools by: the affinity mask's, capped by the quota rounded up; at least 1. */
export function usableCpus(root = "/"): number {
  const quota = cpuQuota(root);
  const cpus = availableParallelism();
  return quota === undefined ? cpus : Math.max(1, Math.min(cpus, Math.ceil(quota)));
}

/** cpu.max ("max 100000" or "<quota> <period>") of the cgroup and each ancestor up to the mount. */
function v2Quota(root: string, path: string): number | undefined {
  let quota: number | undefined;
  for (let dir = path; ; dir = posix.dirname(dir)) {
    const [max, period] = (read(posix.join(root, "sys/fs/cgroup", dir, "cpu.max")) ?? "").trim().split(" ");
    const q = ratio(max, period);
    if (q !== undefined && (quota === undefined || q < quota)) quota = q;
    if (dir === "/" || dir === ".") return quota;
  }
}

/**
 * cpu.cfs_quota_us over cpu.cfs_period_us (-1: none) in the cpu controller's hierarchy, mounted at
 * /sys/fs/cgroup/<controllers> or /sys/fs/cgroup/cpu. Inside a container the process's path is often
 * not visible under the mount, whose top then is the container's own cgroup.
 */
function v1Quota(root: string, controllers: string, path: string): number | undefined {
  for (const mount of new Set([controllers, "cpu"])) {
    for (const dir of [path, "/"]) {
      const base = posix.join(root, "sys/fs/cgroup", mount, dir);
      const quota = read(posix.join(base, "cpu.cfs_quota_us"));
      if (quota === undefined) continue;
      return ratio(quota.trim(), read(posix.join(base, "cpu.cfs_period_us"))?.trim());
    }
  }
  return undefined;
}

/** quota / period for two positive integers; undefined for "max", -1 or anything else. */
function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  if (quota === undefined || period === undefined || !/^\d+$/.test(quota) || !/^\d+$/.test(period)) return undefined;
  const q = Number(quota);
  const p = Number(period);
  return q > 0 && p > 0 ? q / p : undefined;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
