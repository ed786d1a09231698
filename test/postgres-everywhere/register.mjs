// Runs any test suite against PostgreSQL without touching the tests: every openDatabase(<SQLite path>) opens a
// PostgreSQL schema of its own instead (one per path, so reopening a path reaches the same data).
//   node --import ./test/postgres-everywhere/register.mjs --test "src/**/*.test.ts" "test/**/*.test.ts"
// Server: WHARF_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test). The schemas (wshim_*) are left
// behind for inspection; drop them afterwards. src/db/database.test.ts checks capabilities and fails its SQLite part here.
import { register } from 'node:module';
register(new URL('./hooks.mjs', import.meta.url));
