#!/usr/bin/env node
// Launcher for the `wharf` command. Wharf is TypeScript run directly by Node 24 (type stripping).
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `wharf: error NODE_VERSION: Wharf needs Node.js 24 or newer, this is ${process.version}. ` +
      'Run it through npm (`npx wharf`, `npm start`), which uses the Node 24 the project installs, or put Node 24 on PATH.\n',
  );
  process.exit(1);
}
// Cache compiled (type-stripped) modules between runs: it halves the start-up time of every CLI call.
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
await import('../src/cli/main.ts');
