// What createrepo_c records about one RPM package (primary, filelists, other). Produced by package.ts from the
// headers, consumed by repodata.ts to render XML. Semantics follow createrepo_c (see shared/reference/repo-formats.md §3).

export interface RpmDependency {
  readonly name: string;
  /** 'EQ' | 'LT' | 'GT' | 'LE' | 'GE', absent when unversioned */
  readonly flags?: 'EQ' | 'LT' | 'GT' | 'LE' | 'GE';
  readonly epoch?: string;
  readonly version?: string;
  readonly release?: string;
  /** requires only: pre="1" */
  readonly pre?: boolean;
}

export interface RpmFileEntry {
  readonly path: string;
  /** 'file' (regular and everything else), 'dir', 'ghost' */
  readonly type: 'file' | 'dir' | 'ghost';
}

export interface RpmChangelogEntry {
  readonly author: string;
  /** seconds since the epoch */
  readonly date: number;
  readonly text: string;
}

export interface RpmPackageMetadata {
  readonly name: string;
  readonly arch: string;
  /** '0' when absent, as createrepo_c writes it */
  readonly epoch: string;
  readonly version: string;
  readonly release: string;
  readonly summary: string;
  readonly description: string;
  readonly packager: string;
  readonly url: string;
  readonly buildTime: number;
  readonly installedSize: number;
  readonly archiveSize: number;
  readonly license: string;
  readonly vendor: string;
  readonly group: string;
  readonly buildHost: string;
  /** '' for source packages */
  readonly sourceRpm: string;
  readonly isSource: boolean;
  /** byte range of the main header in the file (what rpm:header-range says) */
  readonly headerStart: number;
  readonly headerEnd: number;
  readonly provides: readonly RpmDependency[];
  readonly requires: readonly RpmDependency[];
  readonly conflicts: readonly RpmDependency[];
  readonly obsoletes: readonly RpmDependency[];
  readonly suggests: readonly RpmDependency[];
  readonly enhances: readonly RpmDependency[];
  readonly recommends: readonly RpmDependency[];
  readonly supplements: readonly RpmDependency[];
  /** every file (filelists.xml); primary.xml gets the subset cr_is_primary selects */
  readonly files: readonly RpmFileEntry[];
  /** newest last, at most the configured limit (createrepo_c default 10) */
  readonly changelogs: readonly RpmChangelogEntry[];
}

/** Facts about the file itself, known to the caller (not in the headers). */
export interface RpmFileFacts {
  /** hex sha256 of the whole file: pkgid */
  readonly sha256: string;
  readonly size: number;
  /** file mtime in seconds, createrepo_c's time file= */
  readonly fileTime: number;
  /** location href relative to the repository root (the directory holding repodata/) */
  readonly location: string;
}
