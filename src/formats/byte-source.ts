// A random-access source of bytes (a file in storage, an upload spooled to disk, or an in-memory buffer).
export interface ByteSource {
  readonly size: number;
  /** Reads exactly `length` bytes at `offset` (callers stay within `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.byteLength,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > buf.byteLength) {
        throw new RangeError(`read(${offset}, ${length}) outside of a ${buf.byteLength}-byte buffer`);
      }
      return buf.subarray(offset, offset + length);
    },
  };
}
