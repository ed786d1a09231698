// One APT package index (Packages, Packages.gz, Packages.xz of a component and architecture), kept in memory between
// publishes so that a publish costs what the change costs.
//
// The index is a run of chunks. A chunk is sealed after a package whose SHA-256 starts with a byte < 2 (1 in 128):
// boundaries depend only on content. Sealed chunks never change while packages are only added, so their plain bytes,
// gzip members and xz blocks are computed once, and so are the hash states over them: publishing appends the open
// tail chunk to copies of those states instead of rehashing megabytes.
import { createHash, type Hash } from 'node:crypto';
import type { IndexFileEntry } from '../formats/deb/release.ts';
import { gzipMember } from '../formats/compress.ts';
import { assembleXz, storedXzPart, XZ_CHECK_CRC32, type XzPart } from '../formats/xz.ts';

export interface ChunkPieces {
  readonly gz: Uint8Array;
  readonly xz: XzPart;
}

/**
 * Compresses (or fetches from a cache) the pieces of chunks, by their ids (sha256 of their plain bytes), in order:
 * all the chunks one publish seals at once, so they compress in parallel.
 */
export type ChunkSource = (chunks: readonly { id: string; plain: Uint8Array }[]) => Promise<ChunkPieces[]>;

interface SealedChunk {
  readonly plain: Uint8Array;
  readonly pieces: ChunkPieces;
}

const ALGORITHMS = ['md5', 'sha1', 'sha256', 'sha512'] as const;
type Digests = Omit<IndexFileEntry, 'path'>;

class PrefixHash {
  readonly #hashes = ALGORITHMS.map((a) => createHash(a));
  length = 0;

  update(data: Uint8Array): void {
    for (const h of this.#hashes) h.update(data);
    this.length += data.byteLength;
  }

  /** Digests of the hashed prefix followed by `rest`. */
  digestWith(...rest: Uint8Array[]): Digests {
    let size = this.length;
    for (const r of rest) size += r.byteLength;
    const [md5, sha1, sha256, sha512] = this.#hashes.map((h: Hash) => {
      const c = h.copy();
      for (const r of rest) c.update(r);
      return c.digest('hex');
    });
    return { size, md5: md5!, sha1: sha1!, sha256: sha256!, sha512: sha512! };
  }
}

export function endsChunk(sha256: string): boolean {
  return parseInt(sha256.slice(0, 2), 16) < 2;
}

export interface BuiltIndex {
  /** the files as runs of pieces (never concatenated: a large index is not copied on every publish) */
  readonly plain: readonly Uint8Array[];
  readonly gz: readonly Uint8Array[];
  readonly xz: readonly Uint8Array[];
  readonly digests: { readonly plain: Digests; readonly gz: Digests; readonly xz: Digests };
}

const EMPTY_GZ = gzipMember(new Uint8Array(0));
const XZ_HEADER = assembleXz([], { checkType: XZ_CHECK_CRC32 }).subarray(0, 12);

export class IncrementalIndex {
  readonly #source: ChunkSource;
  readonly #sealed: SealedChunk[] = [];
  #tail: string[] = [];
  readonly #plainHash = new PrefixHash();
  readonly #gzHash = new PrefixHash();
  readonly #xzHash = new PrefixHash();
  /** whether rows were added since the last build */
  #dirty = true;

  constructor(source: ChunkSource) {
    this.#source = source;
    this.#xzHash.update(XZ_HEADER);
  }

  get dirty(): boolean {
    return this.#dirty;
  }

  /** Appends packages (in id order). If compressing a sealed chunk fails, the index is left as it was. */
  async add(rows: readonly { sha256: string; stanza: string }[]): Promise<void> {
    if (rows.length === 0) return;
    let tail = this.#tail.slice();
    const sealing: Uint8Array[] = [];
    for (const r of rows) {
      tail.push(r.stanza, '\n');
      if (endsChunk(r.sha256)) {
        sealing.push(Buffer.from(tail.join(''), 'utf8'));
        tail = [];
      }
    }
    const pieces = sealing.length > 0 ? await this.#source(sealing.map((plain) => ({ id: chunkId(plain), plain }))) : [];
    sealing.forEach((plain, i) => {
      const p = pieces[i]!;
      this.#sealed.push({ plain, pieces: p });
      this.#plainHash.update(plain);
      this.#gzHash.update(p.gz);
      this.#xzHash.update(p.xz.blocks);
    });
    this.#tail = tail;
    this.#dirty = true;
  }

  /** The three files and their digests. */
  async build(): Promise<BuiltIndex> {
    const chunks = [...this.#sealed];
    let tail: SealedChunk | undefined;
    if (this.#tail.length > 0) {
      // The open tail changes with every publish: it is stored, not compressed (fast gzip, uncompressed xz block),
      // and gets real compression once it is sealed.
      const plain = Buffer.from(this.#tail.join(''), 'utf8');
      tail = { plain, pieces: { gz: gzipMember(plain, 1), xz: storedXzPart(plain) } };
      chunks.push(tail);
    }
    const plain = chunks.map((c) => c.plain);
    const gz = chunks.length > 0 ? chunks.map((c) => c.pieces.gz) : [EMPTY_GZ];
    const xz = assembleXz(chunks.map((c) => c.pieces.xz), { checkType: XZ_CHECK_CRC32 });
    this.#dirty = false;
    return {
      plain,
      gz,
      xz: [xz],
      digests: {
        plain: this.#plainHash.digestWith(...(tail ? [tail.plain] : [])),
        gz: chunks.length > 0 ? this.#gzHash.digestWith(...(tail ? [tail.pieces.gz] : [])) : new PrefixHash().digestWith(EMPTY_GZ),
        xz: this.#xzHash.digestWith(xz.subarray(this.#xzHash.length)),
      },
    };
  }
}

function chunkId(plain: Uint8Array): string {
  return createHash('sha256').update(plain).digest('hex');
}
