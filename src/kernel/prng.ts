// splitmix32: the one PRNG every implementation of the selection uses, so a request's seed fixes its pick.

const GOLDEN_GAMMA = 0x9e3779b9;
const TWO_POW_32 = 4294967296;

export class Splitmix32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** A uniform in [0, 1) with 32 bits of resolution. */
  next(): number {
    this.state = (this.state + GOLDEN_GAMMA) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    return z / TWO_POW_32;
  }
}
