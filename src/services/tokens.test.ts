// The one authorisation rule: scopes imply the narrower ones, and a token never reaches past its organisation or
// repository; a JWT's claims give a principal only when complete.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allows, looksLikeJwt, principalFromClaims, type Principal, type Scope } from './tokens.ts';

const deploy = (scopes: Scope[], orgId = 1, repoId: number | null = 10): Principal => ({ tokenId: 5, kind: 'deploy', scopes, orgId, repoId });

test('scopes: read < push < write < admin', () => {
  const table: [Scope, Record<Scope, boolean>][] = [
    ['read', { read: true, push: false, write: false, admin: false }],
    ['push', { read: true, push: true, write: false, admin: false }],
    ['write', { read: true, push: true, write: true, admin: false }],
    ['admin', { read: true, push: true, write: true, admin: true }],
  ];
  for (const [held, expected] of table) {
    for (const [asked, ok] of Object.entries(expected)) assert.equal(allows(deploy([held]), asked as Scope, 1, 10), ok, `${held} -> ${asked}`);
  }
});

test('a token reaches only its organisation or repository; the server admin reaches everything', () => {
  assert.equal(allows(deploy(['admin']), 'read', 1, 11), false);
  assert.equal(allows(deploy(['admin']), 'read', 2, 10), false);
  assert.equal(allows(deploy(['read'], 1, null), 'read', 1, 11), true);
  assert.equal(allows(deploy(['read'], 1, null), 'read', 2, 20), false);
  assert.equal(allows({ tokenId: 1, kind: 'admin', scopes: ['admin'], orgId: null, repoId: null }, 'admin', 7, 70), true);
  assert.equal(allows(undefined, 'read', 1, 10), false);
});

test('JWT claims give a principal bound to their repository, or none when incomplete', () => {
  const claims = { sub: 'publisher:3', scopes: ['push', 'bogus'], org_id: 1, repo_id: 10, ci: { sha: 'abc' } };
  const p = principalFromClaims(claims)!;
  assert.deepEqual(p, { tokenId: 0, kind: 'jwt', scopes: ['push'], orgId: 1, repoId: 10, subject: 'publisher:3', provenance: { sha: 'abc' } });
  assert.equal(allows(p, 'push', 1, 10), true);
  assert.equal(allows(p, 'write', 1, 10), false);
  assert.equal(allows(p, 'read', 1, 11), false);
  for (const missing of ['sub', 'scopes', 'org_id', 'repo_id']) {
    const c: Record<string, unknown> = { ...claims };
    delete c[missing];
    assert.equal(principalFromClaims(c), undefined, `without ${missing}`);
  }
  assert.equal(principalFromClaims({ ...claims, scopes: ['bogus'] }), undefined);
  assert.equal(principalFromClaims({ ...claims, repo_id: '10' }), undefined);
});

test('JWTs are told apart from stored tokens by shape', () => {
  assert.equal(looksLikeJwt('eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'), true);
  assert.equal(looksLikeJwt('wharf_deploy_abc'), false);
  assert.equal(looksLikeJwt('eyJonlyone.part'), false);
});
