// Three identical Wharf nodes on one PostgreSQL database, one S3-API server and Redis (test/helpers/cluster.ts), with
// the real apt-get and dnf:
// - 64 concurrent pushes spread over the nodes into one Debian and one RPM distribution: every package is in the final
//   signed metadata, in fewer generations than pushes, and apt and dnf install from every node;
// - a node killed with SIGKILL while it holds a distribution's publish lock: the lock is released, the others keep
//   serving a repository apt and dnf accept, every acknowledged push is present, and the node's pushes retried on
//   another node land;
// - a revoked deploy token stops working on every node within 5 seconds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { advisoryLockIds, lockHolder, startCluster, type Cluster } from '../helpers/cluster.ts';
import { prepareAptRoot } from '../helpers/apt-root.ts';
import { killAgents, run, show, type Run } from '../helpers/rpm-clients.ts';
import { buildDebBytes, debMeta } from '../../bench/debgen.ts';
import { buildRpmBytes, rpmMeta } from '../../bench/rpmgen.ts';

const REPO = 'acme/fleet';
const N = 64;

let cluster: Cluster;
let tmp: string;
let rpmEnv: Record<string, string>;

async function push(node: number, target: string, file: string, token = cluster.token): Promise<Response> {
  const bytes = await readFile(file);
  const [org, repo, os, dist] = target.split('/');
  return fetch(`${cluster.node(node).url}/api/v1/repos/${org}/${repo}/distributions/${os}/${dist}/packages`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/octet-stream' },
    body: bytes,
  });
}

async function generation(os: string, dist: string): Promise<{ generation: number; changes: number; published: number }> {
  const r = await cluster.db.query('select generation, changes, published_changes from distributions where os = $1 and name = $2', [os, dist]);
  return { generation: Number(r.rows[0].generation), changes: Number(r.rows[0].changes), published: Number(r.rows[0].published_changes) };
}

const names = (packages: string) => new Set([...packages.matchAll(/^Package: (\S+)$/gm)].map((m) => m[1]!));

/** apt-get update + install against one node, in a fresh isolated root. */
async function aptInstall(node: number, pkg: string, label: string): Promise<void> {
  const dir = join(tmp, `apt-${label}`);
  const root = await prepareAptRoot(dir, { arch: 'amd64' });
  const keyring = join(dir, 'wharf.asc');
  await writeFile(keyring, await (await fetch(`${cluster.node(node).url}/${REPO}/gpgkey`)).text());
  await writeFile(join(dir, 'etc/apt/sources.list'), `deb [signed-by=${keyring}] ${cluster.node(node).url}/${REPO}/debian/ bookworm main\n`);
  const update = await run('apt-get', ['update'], root.env);
  assert.equal(update.code, 0, show(`apt-get update (node ${node})`, update));
  assert.doesNotMatch(update.out, /^(W|E|Err):|NO_PUBKEY|not signed|Hash Sum mismatch/m, show(`apt-get update (node ${node})`, update));
  const install = await run('apt-get', ['install', '-y', '--no-install-recommends', pkg], root.env);
  assert.equal(install.code, 0, show(`apt-get install ${pkg} (node ${node})`, install));
  const status = await readFile(join(dir, 'var/lib/dpkg/status'), 'utf8');
  assert.match(status, new RegExp(`^Package: ${pkg}\\nStatus: install ok installed$`, 'm'), `dpkg status after installing ${pkg} from node ${node}`);
}

/** dnf --installroot install against one node, every signature check on (gpgcheck, repo_gpgcheck from the .repo file). */
async function dnfInstall(node: number, pkg: string, label: string): Promise<void> {
  const root = join(tmp, `dnf-${label}`);
  await mkdir(join(root, 'etc/yum.repos.d'), { recursive: true });
  await mkdir(join(root, 'etc/dnf'), { recursive: true });
  await writeFile(join(root, 'etc/dnf/dnf.conf'), ['[main]', 'install_weak_deps=False', 'plugins=0', ''].join('\n'));
  // The .repo file names the public URL (the load balancer): point it at this node instead.
  const repoFile = (await (await fetch(`${cluster.node(node).url}/${REPO}/el/9.repo`)).text()).replaceAll(cluster.url, cluster.node(node).url);
  assert.match(repoFile, /^gpgcheck=1$/m);
  assert.match(repoFile, /^repo_gpgcheck=1$/m);
  await writeFile(join(root, 'etc/yum.repos.d/fleet.repo'), repoFile);
  const r: Run = await run(
    'dnf',
    [
      `--installroot=${root}`,
      `--config=${join(root, 'etc/dnf/dnf.conf')}`,
      `--setopt=reposdir=${join(root, 'etc/yum.repos.d')}`,
      '--releasever=9',
      '--forcearch=x86_64',
      '--noplugins',
      '-y',
      'install',
      pkg,
    ],
    rpmEnv,
  );
  assert.equal(r.code, 0, show(`dnf install ${pkg} (node ${node})`, r));
  const q = await run('rpm', ['--root', root, '-q', pkg], rpmEnv);
  assert.equal(q.code, 0, show(`rpm -q ${pkg} after dnf install from node ${node}`, q));
}

describe('three nodes on PostgreSQL, S3 and Redis', { timeout: 600_000 }, () => {
  const debs: string[] = [];
  const rpms: string[] = [];

  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'wharf-cluster-'));
    await chmod(tmp, 0o755);
    const home = join(tmp, 'home');
    await mkdir(join(home), { recursive: true });
    await mkdir(join(tmp, 'tmp'));
    await writeFile(join(home, '.rpmmacros'), '%_dbpath /var/lib/rpm\n');
    rpmEnv = { HOME: home, TMPDIR: join(tmp, 'tmp'), GNUPGHOME: join(home, '.gnupg') };
    await mkdir(join(tmp, 'pkgs'));
    for (let i = 1; i <= N + 16; i++) {
      const d = { ...debMeta(i), standalone: true };
      debs.push(join(tmp, 'pkgs', d.filename));
      await writeFile(debs.at(-1)!, buildDebBytes(d));
      const r = { ...rpmMeta(i), standalone: true };
      rpms.push(join(tmp, 'pkgs', r.filename));
      await writeFile(rpms.at(-1)!, buildRpmBytes(r));
    }
    cluster = await startCluster({ nodes: 3 });
  });

  after(async () => {
    if (tmp) await killAgents(tmp);
    await cluster?.close();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  test('the nodes started together share one admin token, one metadata key and one set of JWT keys', async () => {
    const keys = await Promise.all([0, 1, 2].map(async (i) => (await fetch(`${cluster.node(i).url}/.well-known/jwks.json`)).text()));
    assert.equal(new Set(keys).size, 1, 'every node publishes the same JWKS');
    const r = await cluster.db.query(`select count(*)::int as n from signing_keys where purpose = 'metadata' and active = 1`);
    assert.equal(r.rows[0].n, 1, 'one metadata signing key');
    const admins = await cluster.db.query(`select count(*)::int as n from tokens where kind = 'admin'`);
    assert.equal(admins.rows[0].n, 1, 'one admin token');
    for (const i of [0, 1, 2]) assert.equal((await fetch(`${cluster.node(i).url}/readyz`)).status, 200, `node ${i} ready`);
  });

  test(`${N} concurrent pushes over three nodes into one distribution each (deb, rpm)`, async (t) => {
    const created = await fetch(`${cluster.url}/api/v1/repos`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cluster.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'acme/fleet' }),
    });
    assert.equal(created.status, 201, await created.text());
    const results = await Promise.all([
      ...debs.slice(0, N).map((f, i) => push(i % 3, `${REPO}/debian/bookworm`, f)),
      ...rpms.slice(0, N).map((f, i) => push((i + 1) % 3, `${REPO}/el/9`, f)),
    ]);
    const bad = results.filter((r) => r.status !== 201);
    assert.deepEqual(await Promise.all(bad.map(async (r) => `${r.status} ${await r.text()}`)), [], 'every push answered 201');

    for (const i of [0, 1, 2]) {
      const base = cluster.node(i).url;
      const packages = await (await fetch(`${base}/${REPO}/debian/dists/bookworm/main/binary-amd64/Packages`)).text();
      const seen = names(packages);
      for (let k = 1; k <= N; k++) assert.ok(seen.has(debMeta(k).name), `node ${i}: ${debMeta(k).name} in Packages`);
      assert.equal(seen.size, N);
    }
    const deb = await generation('debian', 'bookworm');
    const rpm = await generation('el', '9');
    assert.equal(deb.changes, N);
    assert.equal(deb.published, N, 'the last deb generation includes every change');
    assert.equal(rpm.published, N, 'the last rpm generation includes every change');
    t.diagnostic(`${N} deb pushes: ${deb.generation} generations; ${N} rpm pushes: ${rpm.generation} generations`);
    assert.ok(deb.generation < N && rpm.generation < N, `group commit: ${deb.generation} deb and ${rpm.generation} rpm generations for ${N} pushes each`);
  });

  test('apt-get installs from every node', async () => {
    for (const i of [0, 1, 2]) await aptInstall(i, debMeta(i + 1).name, `node${i}`);
  });

  test('dnf installs from every node, with gpgcheck and repo_gpgcheck', async () => {
    for (const i of [0, 1, 2]) await dnfInstall(i, rpmMeta(i + 1).name, `node${i}`);
  });

  test('a node killed with SIGKILL while it holds the publish lock: the lock is released, nothing acknowledged is lost', async (t) => {
    const dist = await cluster.db.query(`select id from distributions where os = 'debian' and name = 'bookworm'`);
    const lock = advisoryLockIds('public', 'publish', String(dist.rows[0].id));
    const victim = 2;
    const acked: string[] = [];
    const failed: string[] = [];
    // Node 2 acknowledges a first wave of pushes, then gets a burst; the test watches the lock and kills the node the
    // moment it holds it.
    for (const [k, f] of debs.slice(N, N + 6).entries()) {
      assert.equal((await push(victim, `${REPO}/debian/bookworm`, f)).status, 201);
      acked.push(debMeta(N + k + 1).name);
    }
    const burst = debs.slice(N + 6, N + 16);
    const pushes = burst.map(async (f, k) => {
      try {
        const r = await push(victim, `${REPO}/debian/bookworm`, f);
        if (r.status === 201) acked.push(debMeta(N + 6 + k + 1).name);
        else failed.push(f);
      } catch {
        failed.push(f);
      }
    });
    let holder: string | undefined;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      holder = await lockHolder(cluster.db, lock);
      if (holder === `wharf-node-${victim}`) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(holder, `wharf-node-${victim}`, 'node 2 was seen holding the publish lock');
    cluster.node(victim).process.kill('SIGKILL');
    await Promise.all(pushes);
    cluster.nodes[victim] = undefined;
    assert.ok(failed.length > 0, 'some pushes to the killed node failed (it died mid-publish)');
    t.diagnostic(`${acked.length} pushes acknowledged before the kill, ${failed.length} failed`);

    // The server ends the dead node's session, and its advisory locks with it.
    const released = Date.now() + 10_000;
    while ((await lockHolder(cluster.db, lock)) === `wharf-node-${victim}` && Date.now() < released) await new Promise((r) => setTimeout(r, 20));
    assert.notEqual(await lockHolder(cluster.db, lock), `wharf-node-${victim}`, 'the dead node no longer holds the lock');

    // The survivors serve a repository apt accepts right away, with every acknowledged package.
    await aptInstall(0, debMeta(1).name, 'after-kill');
    const before = names(await (await fetch(`${cluster.node(1).url}/${REPO}/debian/dists/bookworm/main/binary-amd64/Packages`)).text());
    for (const p of acked) assert.ok(before.has(p), `acknowledged push ${p} is in the metadata after the kill`);

    // A client retries what failed on another node; then everything is there.
    // 200 (unchanged) when the dead node had stored it before dying, 201 when it had not.
    for (const f of failed) assert.ok([200, 201].includes((await push(0, `${REPO}/debian/bookworm`, f)).status), `retry of ${f}`);
    const after = names(await (await fetch(`${cluster.node(0).url}/${REPO}/debian/dists/bookworm/main/binary-amd64/Packages`)).text());
    for (let k = 1; k <= N + 16; k++) assert.ok(after.has(debMeta(k).name), `${debMeta(k).name} present in the end`);
    await aptInstall(1, debMeta(N + 16).name, 'after-retry');

    // The node comes back (stateless: a fresh data directory) and serves the same repository.
    await cluster.startNode(victim);
    const again = names(await (await fetch(`${cluster.node(victim).url}/${REPO}/debian/dists/bookworm/main/binary-amd64/Packages`)).text());
    assert.equal(again.size, after.size);
    await dnfInstall(victim, rpmMeta(N).name, 'restarted');
  });

  test('a revoked deploy token stops working on every node within 5 seconds', async () => {
    const created = await fetch(`${cluster.url}/api/v1/repos`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${cluster.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: 'acme/secret', private: true }),
    });
    const text = await created.text();
    assert.equal(created.status, 201, text);
    const body = JSON.parse(text) as { deploy_token: { id: number; username: string; token: string } };
    const dt = body.deploy_token;
    assert.equal((await push(0, 'acme/secret/debian/bookworm', debs[0]!)).status, 201);
    const basic = `Basic ${Buffer.from(`${dt.username}:${dt.token}`).toString('base64')}`;
    const path = '/acme/secret/debian/dists/bookworm/InRelease';
    for (const i of [0, 1, 2]) assert.equal((await fetch(`${cluster.node(i).url}${path}`, { headers: { Authorization: basic } })).status, 200, `node ${i} before revocation`);
    const revoked = await fetch(`${cluster.node(0).url}/api/v1/repos/acme/secret/tokens/${dt.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${cluster.token}` } });
    assert.ok(revoked.status === 200 || revoked.status === 204, `revoke: ${revoked.status} ${await revoked.text()}`);
    const t0 = Date.now();
    const seen = await Promise.all(
      [0, 1, 2].map(async (i) => {
        while (Date.now() - t0 < 10_000) {
          if ((await fetch(`${cluster.node(i).url}${path}`, { headers: { Authorization: basic } })).status === 401) return Date.now() - t0;
          await new Promise((r) => setTimeout(r, 50));
        }
        return Infinity;
      }),
    );
    for (const [i, ms] of seen.entries()) assert.ok(ms <= 5000, `node ${i} refused the revoked token after ${ms} ms`);
  });
});
