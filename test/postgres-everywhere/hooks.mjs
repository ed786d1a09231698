// Module resolution hook: src/db/database.ts resolves to ./database.ts here, except for that module itself.
const SHIM = new URL('./database.ts', import.meta.url).href;
const REAL = new URL('../../src/db/database.ts', import.meta.url).href;
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  return r.url === REAL && context.parentURL !== SHIM ? { ...r, url: SHIM } : r;
}
