// Deterministic pseudo-random numbers for generated test and benchmark data (not for anything secret).

/** xorshift32 (Marsaglia): the same `seed` gives the same sequence of unsigned 32-bit numbers; a zero seed becomes 1. */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}
