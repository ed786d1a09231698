// dnf's $basearch: the architecture directory a .repo file's baseurl names. dnf maps each RPM architecture to it
// (dnf/rpm/__init__.py, _BASEARCH_MAP), so a 32-bit x86 machine asks for .../i386/ whether its packages are i586 or
// i686, and an armv7hl one for .../armhfp/. An architecture dnf does not know is its own base.

const BASEARCH_OF: Readonly<Record<string, readonly string[]>> = {
  aarch64: ['aarch64'],
  alpha: ['alpha', 'alphaev4', 'alphaev45', 'alphaev5', 'alphaev56', 'alphaev6', 'alphaev67', 'alphaev68', 'alphaev7', 'alphapca56'],
  arm: ['armv5tejl', 'armv5tel', 'armv5tl', 'armv6l', 'armv7l', 'armv8l'],
  armhfp: ['armv6hl', 'armv7hl', 'armv7hnl', 'armv8hl'],
  i386: ['i386', 'athlon', 'geode', 'i486', 'i586', 'i686'],
  ppc64: ['ppc64', 'ppc64iseries', 'ppc64p7', 'ppc64pseries'],
  sh4: ['sh4', 'sh4a'],
  sparc: ['sparc', 'sparc64', 'sparc64v', 'sparcv8', 'sparcv9', 'sparcv9v'],
  x86_64: ['x86_64', 'amd64', 'ia32e'],
};

const BASEARCH = new Map<string, string>(Object.entries(BASEARCH_OF).flatMap(([base, arches]) => arches.map((a) => [a, base] as const)));

/** The $basearch dnf substitutes on a machine of `arch` (i686 -> i386, armv7hl -> armhfp, x86_64 -> x86_64). */
export function rpmBaseArch(arch: string): string {
  return BASEARCH.get(arch) ?? arch;
}
