// Hand-built tar archives: a batch push's body, and the members of .deb files (dpkg-deb refuses to build most of
// the malformed ones the tests need).

/** A ustar header: a regular file ('0') or a directory ('5') of `size` bytes. */
export function tarHeader(name: string, size: number, type: '0' | '5' = '0'): Buffer {
  const h = Buffer.alloc(512);
  const put = (s: string, off: number, len: number) => h.write(s.slice(0, len), off, 'latin1');
  const oct = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';
  put(name, 0, 100);
  put(oct(type === '5' ? 0o755 : 0o644, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(size, 12), 124, 12);
  put(oct(1_700_000_000, 12), 136, 12);
  put('        ', 148, 8);
  put(type, 156, 1);
  put('ustar\0', 257, 6);
  put('00', 263, 2);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  put(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8);
  return h;
}

/**
 * A tar archive of `files`, in order: with a './' directory first, as tar writes one, unless `directory` is false
 * (a batch push takes package files only).
 */
export function tar(files: Record<string, Buffer | string>, opts: { directory?: boolean } = {}): Buffer {
  const parts: Buffer[] = opts.directory === false ? [] : [tarHeader('./', 0, '5')];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    parts.push(tarHeader(name, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}
