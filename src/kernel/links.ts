// Dense link ids for the kernel: every pod gets a rack and a node id, unknown ones unique, so that
// "same node" implies "same rack" and the link classes nest (node ⊂ rack ⊂ cluster).

import type { PoolSnapshot } from "./types.js";

export interface DenseLinks {
  rackOf: Int32Array;
  nodeOf: Int32Array;
  /** Some pod names a node or a rack. */
  hasLinks: boolean;
}

export function denseLinks(snap: PoolSnapshot): DenseLinks {
  const n = snap.pods;
  const rackOf = new Int32Array(n);
  const nodeOf = new Int32Array(n);
  const racks = new Map<string, number>();
  const nodes = new Map<string, number>();
  let hasLinks = false;
  const intern = (map: Map<string, number>, key: string): number => {
    let id = map.get(key);
    if (id === undefined) {
      id = map.size;
      map.set(key, id);
    }
    return id;
  };
  for (let i = 0; i < n; i++) {
    const rack = snap.rackIds[i];
    const node = snap.nodeIds[i];
    if (rack >= 0 || node >= 0) hasLinks = true;
    // A node without a rack forms a rack of its own: pods on one node always share their rack.
    const rackKey = rack >= 0 ? `r${rack}` : node >= 0 ? `n${node}` : `p${i}`;
    rackOf[i] = intern(racks, rackKey);
    nodeOf[i] = intern(nodes, node >= 0 ? `${rackKey}/${node}` : `p${i}`);
  }
  return { rackOf, nodeOf, hasLinks };
}
