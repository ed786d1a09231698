/** Size and the four digests APT indexes carry for every file (Packages entries, Release sections). */
export interface FileDigests {
  readonly size: number;
  readonly md5: string;
  readonly sha1: string;
  readonly sha256: string;
  readonly sha512: string;
}
