// Parsing of the CI claims and validation of what publishers are registered with.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWharfError } from '../../errors.ts';
import { gitlabServerFqdn, parseCiConfigRefUri, validateEnvironment, validateOwnerId, validateProject, validateWorkflow } from './claims.ts';

test('gitlabServerFqdn is the issuer without its scheme (host[:port][/relative root])', () => {
  assert.equal(gitlabServerFqdn('https://gitlab.com'), 'gitlab.com');
  assert.equal(gitlabServerFqdn('https://git.example.com:8443/gitlab'), 'git.example.com:8443/gitlab');
});

test('parseCiConfigRefUri splits fqdn/project//path@ref by index', () => {
  assert.deepEqual(parseCiConfigRefUri('gitlab.com/acme/sub/tools//.gitlab-ci.yml@refs/heads/main', 'gitlab.com'), {
    project: 'acme/sub/tools',
    path: '.gitlab-ci.yml',
    ref: 'refs/heads/main',
  });
  // The host compares case-insensitively; a ref may contain '@'.
  assert.deepEqual(parseCiConfigRefUri('GitLab.com/acme/tools//ci/release.yml@refs/tags/v1@beta', 'gitlab.com'), {
    project: 'acme/tools',
    path: 'ci/release.yml',
    ref: 'refs/tags/v1@beta',
  });
  assert.equal(parseCiConfigRefUri('gitlab.example.com/acme/tools//.gitlab-ci.yml@refs/heads/main', 'gitlab.com'), undefined);
  assert.equal(parseCiConfigRefUri('gitlab.com/acme/tools/.gitlab-ci.yml@refs/heads/main', 'gitlab.com'), undefined);
  assert.equal(parseCiConfigRefUri('gitlab.com/acme/tools//.gitlab-ci.yml', 'gitlab.com'), undefined);
  assert.equal(parseCiConfigRefUri('gitlab.com///.gitlab-ci.yml@x', 'gitlab.com'), undefined);
  assert.equal(parseCiConfigRefUri('gitlab.com/', 'gitlab.com'), undefined);
});

test('parsing and validation stay linear on hostile input', () => {
  const long = 'gitlab.com/' + 'a/'.repeat(200_000) + '/'.repeat(50_000) + '@'.repeat(50_000);
  const t0 = performance.now();
  parseCiConfigRefUri(long, 'gitlab.com');
  parseCiConfigRefUri('gitlab.com/' + '/'.repeat(500_000), 'gitlab.com');
  for (const input of ['a'.repeat(254) + '!', 'a/'.repeat(127) + '!', '.'.repeat(250) + 'yml!']) {
    assert.throws(() => validateProject('gitlab', input));
    assert.throws(() => validateWorkflow('github', input));
  }
  assert.ok(performance.now() - t0 < 500);
});

function invalid(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (e) => isWharfError(e) && e.code === 'PUBLISHER_INVALID' && pattern.test(e.message));
}

test('project validation', () => {
  assert.equal(validateProject('gitlab', 'acme/sub/tools'), 'acme/sub/tools');
  assert.equal(validateProject('gitlab', 'Acme/tools.v2'), 'Acme/tools.v2');
  invalid(() => validateProject('gitlab', 'tools'), /group\/project/);
  invalid(() => validateProject('gitlab', 'acme//tools'), /not a GitLab project path/);
  invalid(() => validateProject('gitlab', 'acme/../tools'), /not a GitLab project path/);
  invalid(() => validateProject('gitlab', '/acme/tools'), /not a GitLab project path/);
  invalid(() => validateProject('gitlab', ''), /1-255/);
  assert.equal(validateProject('github', 'acme/tools'), 'acme/tools');
  invalid(() => validateProject('github', 'acme/sub/tools'), /owner\/repository/);
  invalid(() => validateProject('github', '-acme/tools'), /owner\/repository/);
  invalid(() => validateProject('github', 'acme/..'), /owner\/repository/);
});

test('workflow validation', () => {
  assert.equal(validateWorkflow('gitlab', '.gitlab-ci.yml'), '.gitlab-ci.yml');
  assert.equal(validateWorkflow('gitlab', 'ci/release.yaml'), 'ci/release.yaml');
  invalid(() => validateWorkflow('gitlab', '../other/.gitlab-ci.yml'), /no "\.\."/);
  invalid(() => validateWorkflow('gitlab', 'ci/../x.yml'), /relative to the repository root/);
  invalid(() => validateWorkflow('gitlab', '/ci/release.yml'), /relative to the repository root/);
  invalid(() => validateWorkflow('gitlab', 'ci/release.json'), /\.yml or \.yaml/);
  invalid(() => validateWorkflow('gitlab', '.gitlab-ci.yml@other/project'), /no "@"/);
  invalid(() => validateWorkflow('gitlab', '.yml'), /\.yml or \.yaml/);
  assert.equal(validateWorkflow('github', 'release.yml'), 'release.yml');
  invalid(() => validateWorkflow('github', '.github/workflows/release.yml'), /no directory/);
  invalid(() => validateWorkflow('github', 'release.sh'), /file name/);
});

test('environment and owner id validation', () => {
  assert.equal(validateEnvironment(undefined), null);
  assert.equal(validateEnvironment(''), null);
  assert.equal(validateEnvironment('production'), 'production');
  invalid(() => validateEnvironment(' production'), /surrounding spaces/);
  invalid(() => validateEnvironment('prod\nuction'), /control characters/);
  assert.equal(validateOwnerId('github', '1001'), '1001');
  assert.equal(validateOwnerId('github', undefined), null);
  invalid(() => validateOwnerId('github', 'acme'), /numeric id/);
  invalid(() => validateOwnerId('gitlab', '1001'), /GitHub publishers only/);
});
