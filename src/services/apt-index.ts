// One APT package index (Packages, Packages.gz, Packages.xz of a component and architecture), kept in memory between
// publishes so that a publish costs what the change costs.
//
// The index is a run of chunks. A chunk is sealed after a package whose SHA-256 starts with a byte < 2 (1 in 128):
// boundaries depend only on content. Sealed chunks never change while packages are only added, so their plain bytes,
// gzip members and xz blocks are computed once, and so are the hash states over them: publishing appends the open
// tail chunk to copies of those states instead of rehashing megabytes.
//
// A publish that seals only a chunk or two (the usual push) does not compress them on its way: they go out stored,
// like the tail (fast gzip, an uncompressed xz block), and finishPending(), run after the publish, compresses them
// for the publishes that follow. Compressing a chunk runs xz in a process of its own: tens of milliseconds that
// every push waiting for that publish would otherwise wait too. A bulk import that seals many chunks at once
// compresses them in the publish (in parallel), so its first metadata is already small.
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

/** A sealed chunk whose final pieces are not in the hash states yet: `final` once compressed. */
interface PendingChunk {
  readonly plain: Uint8Array;
  readonly id: string;
  /** what a build carries until `final` is there: a fast gzip member and a stored xz block */
  readonly stored: ChunkPieces;
  final?: ChunkPieces;
  compressing?: boolean;
}

export class IncrementalIndex {
  /** An add that seals at most this many plain bytes seals them provisionally (compressed by finishPending). */
  static PROVISIONAL_BYTES = 512 * 1024;

  readonly #source: ChunkSource;
  readonly #sealed: SealedChunk[] = [];
  /** sealed after #sealed, in order; their plain bytes are in #plainHash, their pieces not yet in #gzHash/#xzHash */
  readonly #pending: PendingChunk[] = [];
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

  /** Sealed chunks still carried stored, not compressed (tests, metrics). */
  get provisionalChunks(): number {
    return this.#pending.filter((p) => !p.final).length;
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
    if (sealing.length > 0) {
      const chunks = sealing.map((plain) => ({ id: chunkId(plain), plain }));
      const bytes = sealing.reduce((n, p) => n + p.byteLength, 0);
      // Many chunks at once (a bulk import): compressed now, in parallel. A few: stored now, compressed after.
      const pieces = bytes > IncrementalIndex.PROVISIONAL_BYTES ? await this.#source(chunks) : undefined;
      chunks.forEach(({ id, plain }, i) => {
        this.#plainHash.update(plain);
        this.#pending.push(pieces ? { plain, id, stored: pieces[i]!, final: pieces[i]! } : { plain, id, stored: storedPieces(plain) });
      });
      this.#promote();
    }
    this.#tail = tail;
    this.#dirty = true;
  }

  /**
   * Compresses the chunks sealed provisionally, for the builds that follow (the current files stay as they are: the
   * index is not dirty for it). Run after a publish, outside its critical path. A failure leaves them stored; the
   * next call tries again.
   */
  async finishPending(): Promise<void> {
    const todo = this.#pending.filter((p) => !p.final && !p.compressing);
    if (todo.length === 0) return;
    for (const p of todo) p.compressing = true;
    try {
      const pieces = await this.#source(todo.map(({ id, plain }) => ({ id, plain })));
      todo.forEach((p, i) => (p.final = pieces[i]));
      this.#promote();
    } finally {
      for (const p of todo) p.compressing = false;
    }
  }

  /** Moves the leading pending chunks that are compressed into the sealed run and its hash states. */
  #promote(): void {
    while (this.#pending[0]?.final) {
      const p = this.#pending.shift()!;
      const pieces = p.final!;
      this.#sealed.push({ plain: p.plain, pieces });
      this.#gzHash.update(pieces.gz);
      this.#xzHash.update(pieces.xz.blocks);
    }
  }

  /** The three files and their digests. */
  async build(): Promise<BuiltIndex> {
    // After the sealed run: the pending chunks (compressed where that is done already), then the open tail, which
    // changes with every publish: it is stored, not compressed, and gets real compression once it is sealed.
    const after: SealedChunk[] = this.#pending.map((p) => ({ plain: p.plain, pieces: p.final ?? p.stored }));
    let tail: SealedChunk | undefined;
    if (this.#tail.length > 0) {
      const plain = Buffer.from(this.#tail.join(''), 'utf8');
      tail = { plain, pieces: storedPieces(plain) };
      after.push(tail);
    }
    const chunks = [...this.#sealed, ...after];
    const plain = chunks.map((c) => c.plain);
    const gz = chunks.length > 0 ? chunks.map((c) => c.pieces.gz) : [EMPTY_GZ];
    const xz = assembleXz(chunks.map((c) => c.pieces.xz), { checkType: XZ_CHECK_CRC32 });
    this.#dirty = false;
    return {
      plain,
      gz,
      xz: [xz],
      digests: {
        // the pending chunks' plain bytes are in #plainHash already
        plain: this.#plainHash.digestWith(...(tail ? [tail.plain] : [])),
        gz: chunks.length > 0 ? this.#gzHash.digestWith(...after.map((c) => c.pieces.gz)) : new PrefixHash().digestWith(EMPTY_GZ),
        xz: this.#xzHash.digestWith(xz.subarray(this.#xzHash.length)),
      },
    };
  }
}

/** Pieces made at once, for chunks that change or are not compressed yet: a fast gzip member, a stored xz block. */
function storedPieces(plain: Uint8Array): ChunkPieces {
  return { gz: gzipMember(plain, 1), xz: storedXzPart(plain) };
}

function chunkId(plain: Uint8Array): string {
  return createHash('sha256').update(plain).digest('hex');
}
