// Wharf's own JWTs: signing, local verification, and key rotation across nodes sharing one database.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { SignJWT, decodeProtectedHeader, decodeJwt, type JWTPayload } from 'jose';
import { openDatabase, type Db } from '../db/database.ts';
import { loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { KeyService } from './keys.ts';
import { JwtIssuer } from './jwt-issuer.ts';
import { isWharfError } from '../errors.ts';

const ISSUER = 'https://wharf.example.test';
const AUD = 'wharf';

async function setup(t: import('node:test').TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-jwt-'));
  const db = await openDatabase(join(dir, 'wharf.db'));
  const config = loadConfig({ data: dir, 'signing-passphrase': 'test-passphrase' }, {});
  const log = createLogger('silent');
  const keys = new KeyService(db, config, log);
  const nodes: JwtIssuer[] = [];
  const node = async (refreshSeconds?: number) => {
    const n = new JwtIssuer({ db, keys, log, refreshSeconds });
    n.setIssuer(ISSUER + '/');
    await n.init();
    nodes.push(n);
    return n;
  };
  t.after(async () => {
    for (const n of nodes) n.close();
    await db.destroy();
    await rm(dir, { recursive: true, force: true });
  });
  return { db, keys, node, issuer: await node() };
}

/** Signs arbitrary claims with the real private key of `kid` (or the active key), to craft invalid tokens. */
async function craft(db: Db, keys: KeyService, payload: JWTPayload, header: Record<string, unknown> = {}, kid?: string): Promise<string> {
  const row = await db
    .selectFrom('jwt_keys')
    .selectAll()
    .where(kid ? 'kid' : 'state', '=', kid ?? 'active')
    .executeTakeFirstOrThrow();
  const key = createPrivateKey({ key: await keys.unseal(row.private_encrypted, 'test'), format: 'der', type: 'pkcs8' });
  return new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'JWT', ...header }).sign(key);
}

const now = () => Math.floor(Date.now() / 1000);
const good = (over: JWTPayload = {}): JWTPayload => ({
  iss: ISSUER,
  aud: AUD,
  sub: 'ci:acme/tools',
  iat: now(),
  nbf: now() - 5,
  exp: now() + 600,
  jti: 'j1',
  scopes: ['read'],
  ...over,
});
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('sign → verify round trip carries every required claim', async (t) => {
  const { issuer } = await setup(t);
  assert.equal(issuer.issuer, ISSUER);
  const { token, expires, jti } = await issuer.sign({ sub: 'user:alice', aud: AUD, scopes: ['read', 'write'], ttlSeconds: 300, extra: { repo: 'acme/tools', iss: 'evil' } });
  const header = decodeProtectedHeader(token);
  assert.equal(header.alg, 'ES256');
  assert.equal(header.typ, 'JWT');
  assert.equal(header.kid, (await issuer.list())[0]!.kid);
  const claims = await issuer.verify(token, AUD);
  assert.ok(claims);
  assert.equal(claims.iss, ISSUER);
  assert.equal(claims.aud, AUD);
  assert.equal(claims.sub, 'user:alice');
  assert.deepEqual(claims.scopes, ['read', 'write']);
  assert.equal(claims.repo, 'acme/tools');
  assert.equal(claims.jti, jti);
  assert.match(jti, /^[A-Za-z0-9_-]{22}$/);
  assert.equal(claims.exp, expires);
  assert.ok(Math.abs(claims.iat! - now()) <= 2);
  assert.equal(claims.nbf, claims.iat! - 5);
  assert.equal(claims.exp! - claims.iat!, 300);
  // Cached and still right; another audience is refused even with the result cached.
  assert.deepEqual(await issuer.verify(token, AUD), claims);
  assert.equal(await issuer.verify(token, 'other'), undefined);
  await assert.rejects(issuer.sign({ sub: 'x', aud: AUD, scopes: [], ttlSeconds: JwtIssuer.MAX_TOKEN_SECONDS + 1 }), RangeError);
});

test('invalid tokens are refused without throwing', async (t) => {
  const { db, keys, issuer } = await setup(t);
  const { token } = await issuer.sign({ sub: 'user:alice', aud: AUD, scopes: ['read'], ttlSeconds: 300 });
  const [h, p, s] = token.split('.') as [string, string, string];
  const kid = decodeProtectedHeader(token).kid;
  const jwk = (await issuer.jwks()).keys[0]!;
  const pem = createPublicKey({ key: jwk as never, format: 'jwk' }).export({ format: 'pem', type: 'spki' });
  const cases: Record<string, string> = {
    'crafted baseline must verify': await craft(db, keys, good()),
    'audience as an array': await craft(db, keys, good({ aud: [AUD, 'other'] })),
    'wrong issuer': await craft(db, keys, good({ iss: 'https://evil.example' })),
    expired: await craft(db, keys, good({ iat: now() - 700, nbf: now() - 700, exp: now() - 60 })),
    'nbf in the future': await craft(db, keys, good({ nbf: now() + 120 })),
    'iat in the future': await craft(db, keys, good({ iat: now() + 120 })),
    'missing jti': await craft(db, keys, good({ jti: undefined })),
    'missing sub': await craft(db, keys, good({ sub: undefined })),
    'missing scopes': await craft(db, keys, good({ scopes: undefined })),
    'scopes not strings': await craft(db, keys, good({ scopes: [1] as never })),
    'missing kid': await craft(db, keys, good(), { kid: undefined }),
    'unknown kid': `${b64({ alg: 'ES256', kid: 'no-such-key', typ: 'JWT' })}.${p}.${s}`,
    'alg none': `${b64({ alg: 'none', kid, typ: 'JWT' })}.${p}.`,
    'HS256 with the public JWK as secret': await new SignJWT(good()).setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' }).sign(Buffer.from(JSON.stringify(jwk))),
    'HS256 with the public PEM as secret': await new SignJWT(good()).setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' }).sign(Buffer.from(pem)),
    'tampered payload': `${h}.${b64({ ...decodeJwt(token), scopes: ['read', 'write', 'admin'] })}.${s}`,
    'tampered signature': `${h}.${p}.${s.slice(0, -4)}AAAA`,
    garbage: 'not.a.jwt',
    empty: '',
  };
  for (const [name, tok] of Object.entries(cases)) {
    const r = await issuer.verify(tok, AUD);
    if (name.startsWith('crafted baseline')) assert.ok(r, name);
    else assert.equal(r, undefined, name);
  }
  assert.equal(await issuer.verify(undefined as never, AUD), undefined);
});

test('rotation: create → publish → switch → trim keeps earlier tokens valid until trimmed', async (t) => {
  const { issuer } = await setup(t);
  const first = (await issuer.list())[0]!;
  assert.equal(first.state, 'active');
  const before = await issuer.sign({ sub: 's', aud: AUD, scopes: ['read'], ttlSeconds: 600 });

  const created = await issuer.create();
  assert.equal(created.state, 'published');
  assert.deepEqual((await issuer.jwks()).keys.map((k) => k.kid).sort(), [first.kid, created.kid].sort());
  // Published but not signing yet.
  assert.equal(decodeProtectedHeader((await issuer.sign({ sub: 's', aud: AUD, scopes: [], ttlSeconds: 60 })).token).kid, first.kid);

  const { active, retired } = await issuer.rotate();
  assert.equal(active.kid, created.kid);
  assert.equal(active.state, 'active');
  assert.equal(retired?.kid, first.kid);
  assert.equal(retired?.state, 'retired');
  const after = await issuer.sign({ sub: 's', aud: AUD, scopes: ['read'], ttlSeconds: 600 });
  assert.equal(decodeProtectedHeader(after.token).kid, created.kid);
  assert.ok(await issuer.verify(before.token, AUD), 'a token signed before the switch still verifies');
  assert.ok(await issuer.verify(after.token, AUD));
  const states = Object.fromEntries((await issuer.list()).map((k) => [k.kid, k.state]));
  assert.deepEqual(states, { [first.kid]: 'retired', [created.kid]: 'active' });
  assert.equal(Object.values(states).filter((s) => s === 'active').length, 1);

  assert.deepEqual(await issuer.trim(), [], 'a just-retired key is kept');
  assert.ok(await issuer.verify(before.token, AUD));
  const trimmed = await issuer.trim({ force: true });
  assert.deepEqual(
    trimmed.map((k) => k.kid),
    [first.kid],
  );
  assert.equal(await issuer.verify(before.token, AUD), undefined, 'the trimmed key no longer verifies, even from the cache');
  assert.ok(await issuer.verify(after.token, AUD));
  assert.deepEqual(
    (await issuer.jwks()).keys.map((k) => k.kid),
    [created.kid],
  );
});

test('rotate without a published key refuses', async (t) => {
  const { issuer } = await setup(t);
  await assert.rejects(issuer.rotate(), (e) => isWharfError(e) && e.code === 'JWT_KEY_NONE_PUBLISHED' && /wharf keys create/.test(e.message));
  assert.equal((await issuer.list()).filter((k) => k.state === 'active').length, 1);
});

test('another node picks up a rotation when it reloads, and on an unknown kid', async (t) => {
  const { issuer: a, node } = await setup(t);
  const b = await node(3600);
  assert.equal((await b.list()).length, 1, 'init on a second node does not create another key');
  const old = await b.sign({ sub: 's', aud: AUD, scopes: [], ttlSeconds: 60 });
  assert.ok(await a.verify(old.token, AUD));

  const created = await a.create();
  await a.rotate();
  const fromA = await a.sign({ sub: 's', aud: AUD, scopes: [], ttlSeconds: 60 });
  // b still has the old key set: reloads on an unknown kid at most once per 5 s (just loaded: not yet).
  assert.equal(await b.verify(fromA.token, AUD), undefined);
  mock.timers.enable({ apis: ['Date'], now: Date.now() + 6000 });
  try {
    assert.ok(await b.verify(fromA.token, AUD), 'unknown kid triggers a reload');
  } finally {
    mock.timers.reset();
  }
  await b.reload();
  const fromB = await b.sign({ sub: 's', aud: AUD, scopes: [], ttlSeconds: 60 });
  assert.equal(decodeProtectedHeader(fromB.token).kid, created.kid);
  assert.ok(await b.verify(old.token, AUD));
  assert.ok(await a.verify(fromB.token, AUD));

  await a.trim({ force: true });
  assert.ok(await b.verify(old.token, AUD), 'b forgets the trimmed key only at its next refresh');
  await b.reload();
  assert.equal(await b.verify(old.token, AUD), undefined);
});

test('jwks holds published, active and retired public keys only; discovery document', async (t) => {
  const { issuer } = await setup(t);
  await issuer.create();
  await issuer.rotate();
  await issuer.create();
  const { keys } = await issuer.jwks();
  assert.equal(keys.length, 3);
  assert.deepEqual((await issuer.list()).map((k) => k.state).sort(), ['active', 'published', 'retired']);
  for (const k of keys) {
    assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
    assert.equal(k.d, undefined);
    assert.equal(k.alg, 'ES256');
    assert.equal(k.use, 'sig');
    assert.equal(k.crv, 'P-256');
  }
  assert.deepEqual(issuer.discovery(), {
    issuer: ISSUER,
    jwks_uri: `${ISSUER}/.well-known/jwks.json`,
    id_token_signing_alg_values_supported: ['ES256'],
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'nbf', 'jti', 'scopes'],
  });
});

test('the private key is stored encrypted', async (t) => {
  const { db, keys } = await setup(t);
  const row = await db.selectFrom('jwt_keys').selectAll().executeTakeFirstOrThrow();
  const der = await keys.unseal(row.private_encrypted, 'test');
  const pem = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  assert.ok(!row.private_encrypted.includes('PRIVATE KEY'));
  assert.ok(!row.private_encrypted.includes(der.toString('base64').slice(0, 40)));
  assert.ok(!row.private_encrypted.includes(pem.split('\n')[1]!));
  assert.equal(Buffer.from(row.private_encrypted, 'base64').indexOf(der), -1);
  assert.ok(!row.public_jwk.includes('"d"'));
});
