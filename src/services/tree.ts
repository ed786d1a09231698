// Where a repository's published files live in blob storage. Public and private trees are kept apart so that the
// public one can be handed to nginx or a CDN as it is, without any chance of exposing a private repository.

export function repoTreePrefix(org: string, repo: string, isPrivate: boolean): string {
  return `${isPrivate ? 'private' : 'public'}/${org}/${repo}`;
}

/** Internal, never-served data (compressed index chunks and similar caches). */
export const INTERNAL_PREFIX = 'internal';

/** The pool directory for a package, the way Debian lays it out (lib packages get a four-letter prefix). */
export function poolDir(dist: string, component: string, source: string): string {
  const prefix = source.startsWith('lib') && source.length > 3 ? source.slice(0, 4) : source.slice(0, 1);
  return `pool/${dist}/${component}/${prefix}/${source}`;
}
