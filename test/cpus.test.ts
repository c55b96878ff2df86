// The CPU quota from cgroup files, v2 and v1, read under a directory of the test's own that stands in
// for the filesystem root; and the CPU count thread pools are sized by.

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { cpuQuota, usableCpus } from "../src/cpus.js";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

/** A root directory holding the given files (paths relative to it). */
function fakeRoot(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "headroom-cpus-"));
  roots.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** A root whose process sits at the top of cgroup v2, with `cpuMax` as its cpu.max. */
const v2 = (cpuMax: string) => fakeRoot({ "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/cpu.max": `${cpuMax}\n` });

/** cgroup v1's quota file under `dir` (from the root), with a period of 100 ms. */
const v1Files = (dir: string, quotaUs: string) => ({
  [`${dir}/cpu.cfs_quota_us`]: `${quotaUs}\n`,
  [`${dir}/cpu.cfs_period_us`]: "100000\n",
});

describe("cgroup v2", () => {
  it("reads cpu.max of the process's cgroup", () => {
    expect(cpuQuota(v2("200000 100000"))).toBe(2);
  });

  it("takes the smallest quota over the cgroup and its ancestors", () => {
    const root = fakeRoot({
      "proc/self/cgroup": "0::/kubepods/pod1/c1\n",
      "sys/fs/cgroup/cpu.max": "max 100000\n",
      "sys/fs/cgroup/kubepods/pod1/cpu.max": "150000 100000\n",
      "sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "max 100000\n",
    });
    expect(cpuQuota(root)).toBe(1.5);
  });

  it("has no quota for max, for malformed files and for missing ones", () => {
    expect(cpuQuota(v2("max 100000"))).toBeUndefined();
    expect(cpuQuota(v2("lots"))).toBeUndefined();
    expect(cpuQuota(v2("0 100000"))).toBeUndefined();
    expect(cpuQuota(fakeRoot({ "proc/self/cgroup": "0::/a\n" }))).toBeUndefined();
    expect(cpuQuota(fakeRoot({}))).toBeUndefined();
  });
});

describe("cgroup v1", () => {
  it("reads cfs quota over period in the cpu hierarchy, at the process's path or the mount's top", () => {
    const atPath = fakeRoot({
      "proc/self/cgroup": "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n",
      ...v1Files("sys/fs/cgroup/cpu,cpuacct/docker/abc", "50000"),
    });
    expect(cpuQuota(atPath)).toBe(0.5);
    const atTop = fakeRoot({
      "proc/self/cgroup": "4:cpu,cpuacct:/docker/abc\n",
      ...v1Files("sys/fs/cgroup/cpu", "300000"),
    });
    expect(cpuQuota(atTop)).toBe(3);
  });

  it("has no quota for -1", () => {
    expect(cpuQuota(fakeRoot({ "proc/self/cgroup": "1:cpu:/\n", ...v1Files("sys/fs/cgroup/cpu", "-1") }))).toBeUndefined();
  });

  it("takes the smaller of a v1 and a v2 quota on a hybrid host", () => {
    const root = fakeRoot({
      "proc/self/cgroup": "1:cpu:/\n0::/\n",
      ...v1Files("sys/fs/cgroup/cpu", "400000"),
      "sys/fs/cgroup/cpu.max": "250000 100000\n",
    });
    expect(cpuQuota(root)).toBe(2.5);
  });
});

describe("usable CPUs", () => {
  it("is the affinity mask's count capped by the quota rounded up, and at least one", () => {
    expect(usableCpus(v2("10000 100000"))).toBe(1);
    expect(usableCpus(v2("100000 100000"))).toBe(1);
    expect(usableCpus(v2("100001 100000"))).toBe(Math.min(2, availableParallelism()));
    expect(usableCpus(v2("100000000 100000"))).toBe(availableParallelism());
    expect(usableCpus(fakeRoot({}))).toBe(availableParallelism());
  });
});
