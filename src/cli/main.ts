// The `wharf` command: `serve` runs the server; every other command is an API client.
// Built-in modules through process.getBuiltinModule: their ESM facades read every export on import, which costs
// several milliseconds of every CLI call (a push of one package takes about 70 ms in all).
const { parseArgs } = process.getBuiltinModule('node:util') as typeof import('node:util');
const { createReadStream, readFileSync, statSync } = process.getBuiltinModule('node:fs') as typeof import('node:fs');
const { basename, resolve } = process.getBuiltinModule('node:path') as typeof import('node:path');
const { Readable, Transform } = process.getBuiltinModule('node:stream') as typeof import('node:stream');
import { OPTION_FLAGS } from '../config-options.ts';
import type * as TarStream from '../formats/tar-stream.ts';
import { isWharfError } from '../errors.ts';
import { ApiError, WharfClient } from './client.ts';
import { mapLimit } from '../services/async.ts';

const USAGE = `Usage: wharf <command> [options]

Server:
  serve [--listen HOST:PORT] [--data DIR] [--config FILE] [--url BASE] [--tls-cert FILE --tls-key FILE]

Client (WHARF_URL / --url, default http://127.0.0.1:8080; WHARF_TOKEN / --token):
  repo create ORG/REPO [--private] [--no-deploy-token] [--no-package-signing]
                                       create a repository (the organisation is created as needed); a private
                                       one gets a read-only deploy token "default-deploy" unless --no-deploy-token;
                                       RPMs are re-signed with its package key unless --no-package-signing
  token create ORG[/REPO] --name NAME [--scope read|push|write|admin]... [--expires 2027-06-30]
  token list ORG[/REPO] | token revoke ORG[/REPO] ID | token rotate ORG[/REPO] ID [--grace 24h]
  audit ORG[/REPO]                     who changed what, when, from where (newest first)
  repo list                            list repositories
  push ORG/REPO/OS/DIST FILE...        upload packages and publish signed metadata
       [--oidc]                        from CI without a stored secret: exchange the job's OIDC token
                                       (GitLab: id_tokens WHARF_ID_TOKEN; GitHub: permissions id-token: write)
  import ORG/REPO/OS/DIST DIR [--link] [--no-recursive] [--no-wait]
                                       store and publish the .rpm/.deb files of a directory on the server itself
                                       (under its importRoots; server admin token): no upload; --link hard-links them
  ls ORG/REPO [OS/DIST] [--long]       list packages (--long: with the CI identity they were published from)
  publisher add ORG/REPO (--gitlab GROUP/PROJECT | --github OWNER/REPO) --workflow PATH
                [--environment ENV] [--issuer URL] [--owner-id ID]
                                       trust a CI workflow to publish (trusted publishing)
  publisher list ORG/REPO | publisher remove ORG/REPO ID
  issuer add URL --type gitlab|github [--allow-private-network] | issuer list | issuer remove ID
                                       OIDC issuers besides gitlab.com and GitHub Actions (admin)
  keys list | keys create | keys rotate | keys trim [--force]
                                       the keys that sign Wharf's JWTs: create, wait for caches, rotate, trim
  yank ORG/REPO/OS/DIST FILENAME       remove a package and republish

Options: --json (machine-readable output), --jobs N (parallel uploads for push, default 4),
         --batch-size N (push: files per request when pushing several, default 5000, and at most 512 MiB; 1 = one request per file),
         --no-wait (push, import: return once the packages are stored; the signed metadata follows within moments),
         --progress / --no-progress (push: a progress bar on stderr; default: on a terminal, for 1 MiB or more)
`;

class UsageError extends Error {}

/** Files per batch request by default (--batch-size), and the most bytes one batch carries. */
const DEFAULT_BATCH_FILES = 5000;
const BATCH_BYTES = 512 * 1024 * 1024;

/** File names a batch archive carries (the server's rule); others are pushed one by one. */
const BATCH_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~-]{0,99}$/;

/** A tar archive of the files, streamed: header, the file's bytes, padding; then the end blocks. */
/**
 * The batch archive, in pieces of about 256 KiB: headers, small files (read whole, synchronously: one open, read and
 * close, no thread-pool round trips) and padding are gathered into one piece, so a batch of thousands of small
 * packages costs a few hundred socket writes, not several per file. Larger files stream.
 */
async function* tarOf(tar: typeof TarStream, files: readonly string[], sizes: readonly number[]): AsyncGenerator<Uint8Array> {
  const { tarHeader, tarPadding, TAR_END } = tar;
  const PIECE = 256 * 1024;
  let parts: Uint8Array[] = [];
  let gathered = 0;
  const add = (b: Uint8Array) => {
    parts.push(b);
    gathered += b.byteLength;
  };
  const take = () => {
    const piece = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    parts = [];
    gathered = 0;
    return piece;
  };
  for (const [i, f] of files.entries()) {
    const size = sizes[i]!;
    add(tarHeader(basename(f), size));
    let n = 0;
    if (size <= PIECE) {
      const data = readFileSync(f);
      n = data.byteLength;
      add(data);
    } else {
      yield take();
      for await (const chunk of createReadStream(f)) {
        n += (chunk as Buffer).byteLength;
        yield chunk as Buffer;
      }
    }
    if (n !== size) throw new Error(`${f} changed size while being sent`);
    add(tarPadding(n));
    if (gathered >= PIECE) yield take();
  }
  add(TAR_END);
  yield take();
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      ...OPTION_FLAGS,
      config: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      private: { type: 'boolean' },
      'no-deploy-token': { type: 'boolean' },
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      expires: { type: 'string' },
      grace: { type: 'string' },
      'no-package-signing': { type: 'boolean' },
      jobs: { type: 'string' },
      'batch-size': { type: 'string' },
      'no-wait': { type: 'boolean' },
      link: { type: 'boolean' },
      'no-recursive': { type: 'boolean' },
      progress: { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      oidc: { type: 'boolean' },
      long: { type: 'boolean' },
      gitlab: { type: 'string' },
      github: { type: 'string' },
      workflow: { type: 'string' },
      environment: { type: 'string' },
      issuer: { type: 'string' },
      'owner-id': { type: 'string' },
      type: { type: 'string' },
      'allow-private-network': { type: 'boolean' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const positionals = parsed.positionals;
  const [command, ...args] = positionals;
  if (values.help || !command) {
    process.stdout.write(USAGE);
    return command || values.help ? 0 : 2;
  }
  if (command === 'serve') return serve(values);

  let client = new WharfClient({
    url: (values.url as string | undefined) ?? process.env.WHARF_URL ?? 'http://127.0.0.1:8080',
    token: (values.token as string | undefined) ?? process.env.WHARF_TOKEN,
  });
  const json = values.json === true;
  const out = (human: string, data: unknown) => process.stdout.write(json ? JSON.stringify(data, null, 2) + '\n' : human + '\n');

  switch (command) {
    case 'repo': {
      const [sub, name] = args;
      if (sub === 'create' && name && args.length === 2) {
        const r = await client.request<{ repository: any; deploy_token?: any }>('POST', 'repos', {
          json: {
            name,
            private: values.private === true,
            sign_packages: values['no-package-signing'] !== true,
            deploy_token: values['no-deploy-token'] !== true,
          },
        });
        let text = `created ${r.repository.private ? 'private' : 'public'} repository ${r.repository.org}/${r.repository.name}`;
        if (r.deploy_token) text += `\n${describeCreatedToken(r.deploy_token)}`;
        out(text, r);
        return 0;
      }
      if (sub === 'list' && args.length === 1) {
        const r = await client.request<{ repositories: any[] }>('GET', 'repos');
        out(r.repositories.map((x) => `${x.org}/${x.name}${x.private ? ' (private)' : ''}`).join('\n') || '(no repositories)', r);
        return 0;
      }
      throw new UsageError('usage: wharf repo create ORG/REPO [--private] [--no-package-signing] | wharf repo list');
    }
    case 'token': {
      const [sub, scopeArg, id] = args;
      const scopeParts = scopeArg?.split('/') ?? [];
      if (!sub || !scopeArg || scopeParts.length < 1 || scopeParts.length > 2 || scopeParts.some((x) => !x)) {
        throw new UsageError(TOKEN_USAGE);
      }
      const base = scopeParts.length === 2 ? `repos/${scopeParts.map(encodeURIComponent).join('/')}/tokens` : `orgs/${encodeURIComponent(scopeParts[0]!)}/tokens`;
      if (sub === 'create' && args.length === 2) {
        if (typeof values.name !== 'string') throw new UsageError('token create needs --name NAME');
        const scopes = ((values.scope as unknown as string[] | undefined) ?? ['read']).flatMap((s) => s.split(','));
        let expires_at: string | undefined;
        if (typeof values.expires === 'string') {
          if (Number.isNaN(Date.parse(values.expires))) throw new UsageError('--expires must be a date such as 2027-06-30');
          expires_at = new Date(values.expires).toISOString();
        }
        const r = await client.request<{ token: any }>('POST', base, { json: { name: values.name, scopes, ...(expires_at ? { expires_at } : {}) } });
        if (json) process.stdout.write(JSON.stringify(r.token, null, 2) + '\n');
        else process.stdout.write(describeCreatedToken(r.token) + '\n');
        return 0;
      }
      if (sub === 'list' && args.length === 2) {
        const r = await client.request<{ tokens: any[] }>('GET', base);
        const rows = r.tokens.map(
          (t) =>
            `${t.id}\t${t.name}\t${t.scopes.join(',')}\t${t.repo ? `${t.org}/${t.repo}` : t.org}\texpires ${t.expires_at ?? 'never'}\tcreated ${t.created_at}\tlast used ${t.last_used_at ?? 'never'}${t.revoked_at ? `\trevoked ${t.revoked_at}` : ''}`,
        );
        out(rows.join('\n') || '(no tokens)', r);
        return 0;
      }
      if (sub === 'revoke' && id && args.length === 3) {
        const r = await client.request<any>('DELETE', `${base}/${encodeURIComponent(id)}`);
        out(`revoked token ${id}`, r);
        return 0;
      }
      if (sub === 'rotate' && id && args.length === 3) {
        const grace = parseDuration(typeof values.grace === 'string' ? values.grace : '24h');
        const r = await client.request<{ token: any }>('POST', `${base}/${encodeURIComponent(id)}/rotate`, { json: { grace_seconds: grace } });
        if (json) process.stdout.write(JSON.stringify(r.token, null, 2) + '\n');
        else process.stdout.write(`${describeCreatedToken(r.token)}\nThe previous secret stays valid for ${grace} s.\n`);
        return 0;
      }
      throw new UsageError(TOKEN_USAGE);
    }
    case 'audit': {
      const [scopeArg] = args;
      const parts = scopeArg?.split('/') ?? [];
      if (!scopeArg || args.length !== 1 || parts.length > 2 || parts.some((x) => !x)) throw new UsageError('usage: wharf audit ORG[/REPO]');
      const path = parts.length === 2 ? `repos/${parts.map(encodeURIComponent).join('/')}/audit` : `orgs/${encodeURIComponent(parts[0]!)}/audit`;
      const r = await client.request<{ entries: any[] }>('GET', path);
      out(
        r.entries.map((e) => `${e.at}\t${e.actor}\t${e.ip ?? '-'}\t${e.action}\t${e.target}${e.details ? `\t${JSON.stringify(e.details)}` : ''}`).join('\n') || '(no entries)',
        r,
      );
      return 0;
    }
    case 'push': {
      const [target, ...files] = args;
      const t = target?.split('/') ?? [];
      if (t.length !== 4 || files.length === 0) throw new UsageError('usage: wharf push ORG/REPO/OS/DIST FILE...');
      const path = `repos/${t.map(encodeURIComponent).slice(0, 2).join('/')}/distributions/${encodeURIComponent(t[2]!)}/${encodeURIComponent(t[3]!)}/packages`;
      if (values.oidc === true) client = client.withToken(await mintFromCi(client, `${t[0]}/${t[1]}`, json));
      const jobs = Number(values.jobs ?? 4);
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new UsageError('--jobs must be a whole number from 1 to 64');
      const results: any[] = [];
      const failures: { file: string; code: string; message: string }[] = [];
      const batchSize = Number(values['batch-size'] ?? DEFAULT_BATCH_FILES);
      if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 20_000) throw new UsageError('--batch-size must be a whole number from 1 to 20000');
      const fail = (file: string, e: unknown) => {
        const code = e instanceof ApiError ? e.code : (e as NodeJS.ErrnoException).code ?? 'ERROR';
        failures.push({ file, code, message: (e as Error).message });
        if (!json) process.stderr.write(`wharf: error ${code}: ${file}: ${(e as Error).message}\n`);
      };
      // --no-wait: the server answers once the packages are stored (202); the signed metadata follows.
      const noWait = values['no-wait'] === true;
      const prefer = noWait ? { Prefer: 'respond-async' } : undefined;
      const report = (file: string, r: any) => {
        results.push({ file, ...r });
        if (!json) process.stdout.write(`${r.status === 'created' ? (noWait ? 'stored' : 'pushed') : 'unchanged'} ${r.package.filename} to ${target}${noWait ? ' (metadata follows)' : ''}\n`);
      };
      // Several files go as tar archives of up to --batch-size files: one request and one metadata generation per
      // batch instead of per file. Files whose names a batch cannot carry go one by one.
      let single = files;
      // One bar for the whole push (every batch and file), on stderr.
      const progress = new Progress(files.length === 1 ? basename(files[0]!) : `${files.length} files`, values.progress === true ? true : values['no-progress'] === true ? false : undefined);
      if (files.length > 1 && batchSize > 1) {
        // Loaded only here: every other command starts without it.
        const tar = await import('../formats/tar-stream.ts');
        const batchable = files.filter((f) => BATCH_NAME.test(basename(f)));
        single = files.filter((f) => !BATCH_NAME.test(basename(f)));
        // Batches of at most --batch-size files and BATCH_BYTES (one larger file goes alone): few requests and
        // generations for many small packages, and no single request of hours for many large ones.
        const batches: { ok: string[]; sizes: number[]; bytes: number }[] = [];
        for (const f of batchable) {
          let size: number;
          try {
            const st = statSync(f);
            if (!st.isFile()) throw new ApiError('NOT_A_FILE', `${f} is not a regular file`, 0);
            size = st.size;
          } catch (e) {
            fail(f, e);
            continue;
          }
          let b = batches.at(-1);
          if (!b || b.ok.length >= batchSize || (b.bytes + size > BATCH_BYTES && b.ok.length > 0)) batches.push((b = { ok: [], sizes: [], bytes: 0 }));
          b.ok.push(f);
          b.sizes.push(size);
          b.bytes += size;
        }
        for (const b of batches) progress.expect(tar.tarSize(b.sizes));
        await mapLimit(batches, Math.min(jobs, 2), async ({ ok, sizes }) => {
          try {
            const r = await client.request<{ results: any[] }>('POST', path, { stream: progress.counted(Readable.from(tarOf(tar, ok, sizes))), length: tar.tarSize(sizes), type: 'application/x-tar' }, prefer).catch((e) => {
              // Some packages refused: the answer still lists every file's result.
              if (e instanceof ApiError && e.code === 'BATCH_PARTIAL' && e.body && Array.isArray((e.body as any).results)) return e.body as { results: any[] };
              throw e;
            });
            r.results.forEach((x, i) => {
              const file = ok[i] ?? x.file;
              if (x.status === 'refused') fail(file, new ApiError(x.error?.code ?? 'REFUSED', x.error?.message ?? 'refused', 422));
              else report(file, { status: x.status, package: x.package });
            });
          } catch (e) {
            for (const f of ok) fail(f, e);
          }
        });
      }
      const sized = single.map((file) => {
        try {
          const st = statSync(file);
          if (!st.isFile()) throw new ApiError('NOT_A_FILE', `${file} is not a regular file`, 0);
          progress.expect(st.size);
          return { file, size: st.size };
        } catch (e) {
          fail(file, e);
          return undefined;
        }
      });
      await mapLimit(
        sized.filter((x) => x !== undefined),
        jobs,
        async ({ file, size }) => {
          try {
            // A small file goes in one write; a large one streams.
            const r =
              size < 1024 * 1024
                ? await client.request<any>('POST', path, { data: progress.sent(readFileSync(file)), type: 'application/octet-stream' }, prefer)
                : await client.request<any>('POST', path, { stream: progress.counted(createReadStream(file)), length: size, type: 'application/octet-stream' }, prefer);
            report(file, r);
          } catch (e) {
            fail(file, e);
          }
        },
      );
      progress.end();
      if (json) process.stdout.write(JSON.stringify({ pushed: results, failed: failures }, null, 2) + '\n');
      return failures.length > 0 ? 1 : 0;
    }
    case 'import': {
      const [target, dir, ...extra] = args;
      const t = target?.split('/') ?? [];
      if (t.length !== 4 || !dir || extra.length > 0) throw new UsageError('usage: wharf import ORG/REPO/OS/DIST DIR [--link] [--no-recursive] [--no-wait]');
      const path = `repos/${t.map(encodeURIComponent).slice(0, 2).join('/')}/distributions/${encodeURIComponent(t[2]!)}/${encodeURIComponent(t[3]!)}/import`;
      const noWait = values['no-wait'] === true;
      // The directory as the server sees it: this machine's absolute path (the server runs here, or shares it).
      const body = { path: resolve(dir), link: values.link === true, recursive: values['no-recursive'] !== true };
      const r = await client.request<{ results: any[]; generation?: number }>('POST', path, { json: body }, noWait ? { Prefer: 'respond-async' } : undefined).catch((e) => {
        // Some files refused: the answer still lists every file's result.
        if (e instanceof ApiError && e.code === 'BATCH_PARTIAL' && e.body && Array.isArray((e.body as any).results)) return e.body as { results: any[]; generation?: number };
        throw e;
      });
      const counts = { created: 0, unchanged: 0, refused: 0 };
      for (const x of r.results) {
        counts[x.status as keyof typeof counts]++;
        if (x.status === 'refused' && !json) process.stderr.write(`wharf: error ${x.error?.code}: ${x.file}: ${x.error?.message}\n`);
      }
      out(`imported ${counts.created} new and ${counts.unchanged} unchanged packages into ${target}${counts.refused ? `; ${counts.refused} refused` : ''}${noWait ? ' (metadata follows)' : r.generation !== undefined ? ` (metadata generation ${r.generation})` : ''}`, r);
      return counts.refused > 0 ? 1 : 0;
    }
    case 'ls': {
      const [repo, dist] = args;
      if (!repo || args.length > 2 || repo.split('/').length !== 2) throw new UsageError('usage: wharf ls ORG/REPO [OS/DIST]');
      const q = dist ? `?distribution=${encodeURIComponent(dist)}` : '';
      const r = await client.request<{ packages: any[] }>('GET', `repos/${repo.split('/').map(encodeURIComponent).join('/')}/packages${q}`);
      const line = (p: any) => {
        const base = `${p.distribution}\t${p.name}\t${p.version}\t${p.architecture}\t${p.filename}`;
        if (values.long !== true) return base;
        return `${base}\t${p.size}\tsha256:${p.sha256}\t${p.created_at}\n  ${describeProvenance(p.provenance)}`;
      };
      out(r.packages.map(line).join('\n') || '(no packages)', r);
      return 0;
    }
    case 'yank': {
      const [target, filename] = args;
      const t = target?.split('/') ?? [];
      if (t.length !== 4 || !filename || args.length !== 2) throw new UsageError('usage: wharf yank ORG/REPO/OS/DIST FILENAME');
      const r = await client.request<any>('DELETE', `repos/${t.map(encodeURIComponent).slice(0, 2).join('/')}/distributions/${encodeURIComponent(t[2]!)}/${encodeURIComponent(t[3]!)}/packages/${encodeURIComponent(filename)}`);
      out(`yanked ${r.yanked.filename} from ${target}`, r);
      return 0;
    }
    case 'publisher': {
      const [sub, repo, id] = args;
      if (!sub || !repo || repo.split('/').length !== 2 || repo.split('/').some((x) => !x)) throw new UsageError(PUBLISHER_USAGE);
      const base = `repos/${repo.split('/').map(encodeURIComponent).join('/')}/publishers`;
      if (sub === 'add' && args.length === 2) {
        const gitlab = values.gitlab as string | undefined;
        const github = values.github as string | undefined;
        if (Boolean(gitlab) === Boolean(github)) throw new UsageError('publisher add needs exactly one of --gitlab GROUP/PROJECT or --github OWNER/REPO');
        if (typeof values.workflow !== 'string') throw new UsageError('publisher add needs --workflow (GitLab: the CI file path such as .gitlab-ci.yml; GitHub: the workflow file name such as release.yml)');
        const r = await client.request<{ publisher: any }>('POST', base, {
          json: {
            provider: gitlab ? 'gitlab' : 'github',
            project: gitlab ?? github,
            workflow: values.workflow,
            ...(typeof values.environment === 'string' ? { environment: values.environment } : {}),
            ...(typeof values.issuer === 'string' ? { issuer: values.issuer } : {}),
            ...(typeof values['owner-id'] === 'string' ? { owner_id: values['owner-id'] } : {}),
          },
        });
        out(`added trusted publisher ${r.publisher.id} to ${repo}: ${describePublisher(r.publisher)}`, r);
        return 0;
      }
      if (sub === 'list' && args.length === 2) {
        const r = await client.request<{ publishers: any[] }>('GET', base);
        out(r.publishers.map((x) => `${x.id}\t${describePublisher(x)}`).join('\n') || '(no trusted publishers)', r);
        return 0;
      }
      if (sub === 'remove' && id && args.length === 3) {
        const r = await client.request<any>('DELETE', `${base}/${encodeURIComponent(id)}`);
        out(`removed trusted publisher ${id} from ${repo}`, r);
        return 0;
      }
      throw new UsageError(PUBLISHER_USAGE);
    }
    case 'issuer': {
      const [sub, arg] = args;
      if (sub === 'add' && arg && args.length === 2) {
        if (values.type !== 'gitlab' && values.type !== 'github') throw new UsageError('issuer add needs --type gitlab or --type github');
        const r = await client.request<{ issuer: any }>('POST', 'issuers', { json: { url: arg, type: values.type, allow_private_network: values['allow-private-network'] === true } });
        out(`added ${r.issuer.type} issuer ${r.issuer.id}: ${r.issuer.url}${values['allow-private-network'] ? ' (may resolve to private addresses)' : ''}`, r);
        return 0;
      }
      if (sub === 'list' && args.length === 1) {
        const r = await client.request<{ issuers: any[] }>('GET', 'issuers');
        out(r.issuers.map((x) => `${x.id ?? '-'}\t${x.type}\t${x.url}${x.builtin ? '\t(built in)' : ''}${x.allow_private_network ? '\t(private network allowed)' : ''}`).join('\n'), r);
        return 0;
      }
      if (sub === 'remove' && arg && args.length === 2) {
        const r = await client.request<any>('DELETE', `issuers/${encodeURIComponent(arg)}`);
        out(`removed issuer ${arg}`, r);
        return 0;
      }
      throw new UsageError('usage: wharf issuer add URL --type gitlab|github [--allow-private-network] | issuer list | issuer remove ID');
    }
    case 'keys': {
      const [sub] = args;
      const show = (k: any) => `${k.kid}\t${k.alg}\t${k.state}\tcreated ${k.created_at}${k.activated_at ? `\tsigning since ${k.activated_at}` : ''}${k.retired_at ? `\tretired ${k.retired_at}` : ''}`;
      if (sub === 'list' && args.length === 1) {
        const r = await client.request<{ keys: any[] }>('GET', 'keys');
        out(r.keys.map(show).join('\n'), r);
        return 0;
      }
      if (sub === 'create' && args.length === 1) {
        const r = await client.request<{ key: any }>('POST', 'keys');
        out(`created and published key ${r.key.kid}; it signs nothing yet. Once JWKS caches have picked it up (5 minutes for Wharf's own; longer for CDNs and third parties), run \`wharf keys rotate\`.`, r);
        return 0;
      }
      if (sub === 'rotate' && args.length === 1) {
        const r = await client.request<{ active: any; retired: any }>('POST', 'keys/rotate');
        out(`key ${r.active.kid} now signs new tokens${r.retired ? `; ${r.retired.kid} is retired and keeps verifying the tokens it signed until \`wharf keys trim\`` : ''}`, r);
        return 0;
      }
      if (sub === 'trim' && args.length === 1) {
        const r = await client.request<{ trimmed: any[] }>('POST', 'keys/trim', { json: { force: values.force === true } });
        out(r.trimmed.length ? `removed ${r.trimmed.map((k) => k.kid).join(', ')} from the key set` : 'nothing to trim (retired keys stay until every token they signed has expired; --force removes them now)', r);
        return 0;
      }
      throw new UsageError('usage: wharf keys list | keys create | keys rotate | keys trim [--force]');
    }
    default:
      throw new UsageError(`unknown command "${String(command).slice(0, 100)}": \`wharf --help\` lists the commands`);
  }
}

const TOKEN_USAGE =
  'usage: wharf token create ORG[/REPO] --name NAME [--scope read|push|write|admin]... [--expires DATE] | token list ORG[/REPO] | token revoke ORG[/REPO] ID | token rotate ORG[/REPO] ID [--grace 24h]';

const PUBLISHER_USAGE =
  'usage: wharf publisher add ORG/REPO (--gitlab GROUP/PROJECT | --github OWNER/REPO) --workflow PATH [--environment ENV] [--issuer URL] [--owner-id ID] | publisher list ORG/REPO | publisher remove ORG/REPO ID';

function describePublisher(p: any): string {
  const where = p.provider === 'gitlab' ? `GitLab project ${p.project}, CI file ${p.workflow}` : `GitHub repository ${p.project}, workflow ${p.workflow}`;
  return `${where}${p.environment ? `, environment ${p.environment}` : ''} (issuer ${p.issuer})`;
}

function describeProvenance(ci: any): string {
  if (!ci) return 'pushed with a token (no CI identity)';
  const run = ci.provider === 'github' ? `run ${ci.run_id}` : `pipeline ${ci.run_id}`;
  return `published from ${ci.provider} ${ci.issuer} ${ci.project} ${ci.ref} (sha ${ci.sha}, ${run}, workflow ${ci.workflow}${ci.environment ? `, environment ${ci.environment}` : ''})`;
}

/**
 * Trusted publishing from CI: takes the job's OIDC token (GitLab: the id_tokens variable WHARF_ID_TOKEN; GitHub: asks
 * the Actions token service for one with Wharf's audience) and exchanges it for a short-lived Wharf token for `repository`.
 */
async function mintFromCi(client: WharfClient, repository: string, json: boolean): Promise<string> {
  let ciToken = process.env.WHARF_ID_TOKEN;
  if (!ciToken && process.env.ACTIONS_ID_TOKEN_REQUEST_URL && process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    const { audience } = await client.send<{ audience: string }>('GET', '_/oidc/audience');
    const u = new URL(process.env.ACTIONS_ID_TOKEN_REQUEST_URL);
    u.searchParams.set('audience', audience);
    const r = await fetch(u, { headers: { Authorization: `bearer ${process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN}`, Accept: 'application/json' } });
    const body = (await r.json().catch(() => ({}))) as { value?: unknown };
    if (!r.ok || typeof body.value !== 'string') throw new ApiError('OIDC_CI_TOKEN_UNAVAILABLE', `GitHub Actions did not issue an OIDC token (HTTP ${r.status}): does the job have permissions: id-token: write?`, 0);
    ciToken = body.value;
  }
  if (!ciToken) {
    throw new ApiError(
      'OIDC_CI_TOKEN_UNAVAILABLE',
      'no CI OIDC token: in GitLab CI declare `id_tokens: { WHARF_ID_TOKEN: { aud: <audience> } }` (the audience is at /_/oidc/audience); in GitHub Actions grant `permissions: id-token: write`',
      0,
    );
  }
  const minted = await client.send<{ token: string; expires: number }>('POST', '_/oidc/mint-token', { json: { token: ciToken, repository } });
  if (!json) process.stderr.write(`trusted publishing: exchanged the CI token for a Wharf token valid until ${new Date(minted.expires * 1000).toISOString()}\n`);
  return minted.token;
}

function describeCreatedToken(t: { id: number; name: string; username: string; token: string; scopes: string[]; expires_at: string | null }): string {
  return [
    `Deploy token ${t.name} (id ${t.id}, scopes ${t.scopes.join(',')}, expires ${t.expires_at ?? 'never'}). Shown once: store it now.`,
    `  username: ${t.username}`,
    `  token:    ${t.token}`,
  ].join('\n');
}

/** "90s", "15m", "24h", "7d" or plain seconds. */
function parseDuration(v: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(v.trim());
  if (!m) throw new UsageError(`invalid duration "${v}": use seconds or a number with s, m, h or d (e.g. 24h)`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
}

/** A progress bar on stderr for uploads of 1 MiB and more, only on a terminal. */
/**
 * The progress bar of a push: bytes sent of the whole push (every batch and file) on stderr, redrawn at most ten
 * times a second. Shown on a terminal when the push is 1 MiB or more; `force` (--progress / --no-progress) decides
 * otherwise.
 */
class Progress {
  readonly #label: string;
  readonly #force: boolean | undefined;
  readonly #started = Date.now();
  #total = 0;
  #sent = 0;
  #last = 0;
  #drawn = false;

  constructor(label: string, force: boolean | undefined) {
    this.#label = label;
    this.#force = force;
  }

  get #show(): boolean {
    return this.#force ?? (process.stderr.isTTY === true && this.#total >= 1024 * 1024);
  }

  /** adds `bytes` to the total */
  expect(bytes: number): void {
    this.#total += bytes;
  }

  /** counts `bytes` as sent; returns them */
  sent<T extends Uint8Array>(bytes: T): T {
    this.#add(bytes.byteLength);
    return bytes;
  }

  /** `source` through a pass-through stream that counts what goes through it; an error of `source` ends it too */
  counted(source: NodeJS.ReadableStream & { destroy(e?: Error): unknown }): InstanceType<typeof Transform> {
    const counter = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.#add(chunk.length);
        cb(null, chunk);
      },
    });
    // pipe() does not pass errors on: a file that cannot be read must fail this request, not the process
    source.on('error', (e: Error) => counter.destroy(e));
    counter.on('close', () => source.destroy());
    return source.pipe(counter);
  }

  /** the last drawing, with a newline (nothing when no bar was shown) */
  end(): void {
    if (this.#show && (this.#drawn || this.#total > 0)) this.#draw(true);
  }

  #add(n: number): void {
    this.#sent += n;
    if (this.#show && Date.now() - this.#last > 100) {
      this.#last = Date.now();
      this.#draw(false);
    }
  }

  #draw(final: boolean): void {
    this.#drawn = true;
    const width = 30;
    const frac = this.#total ? Math.min(1, this.#sent / this.#total) : 1;
    const filled = Math.round(frac * width);
    const mib = (n: number) => (n / 1024 / 1024).toFixed(1);
    const rate = this.#sent / Math.max(0.001, (Date.now() - this.#started) / 1000);
    process.stderr.write(
      `\r${this.#label.slice(0, 40)} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${Math.floor(frac * 100)}% ${mib(this.#sent)}/${mib(this.#total)} MiB ${mib(rate)} MiB/s${final ? '\n' : ''}`,
    );
  }
}

async function serve(values: Record<string, string | boolean | undefined>): Promise<number> {
  const { loadConfig } = await import('../config.ts');
  const config = loadConfig(values, process.env);
  const { createApp } = await import('../app.ts');
  const { startServer } = await import('../server.ts');
  const app = await createApp(config);
  const server = await startServer(app);
  if (app.createdAdminToken && config.adminToken) {
    process.stdout.write(`Admin token created from WHARF_ADMIN_TOKEN (also saved to ${config.dataDir}/admin-token with mode 0600)\n`);
  } else if (app.createdAdminToken) {
    process.stdout.write(
      `Admin token (shown once; also saved to ${config.dataDir}/admin-token with mode 0600):\n  ${app.createdAdminToken}\n` +
        `Use it with: export WHARF_TOKEN=$(cat ${config.dataDir}/admin-token)\n`,
    );
  }
  process.stdout.write(`Wharf listening on ${server.url} (public URL ${server.publicUrl}, data in ${config.dataDir})\n`);
  if (/^https?:\/\/(0\.0\.0\.0|\[::\])(:|$)/.test(server.publicUrl)) {
    process.stderr.write(
      `wharf: warning PUBLIC_URL: listening on every interface without --url: .repo files, /ORG/REPO/install, signed download URLs and token issuers name ${server.publicUrl}, which clients cannot reach; set --url (WHARF_PUBLIC_URL) to the address they use\n`,
    );
  }
  // The first SIGTERM (or SIGINT) stops gracefully: requests in flight finish (server.drain), then the publishes and
  // clean-ups under way (app.close). A second one skips what is left of the waits for requests; one more, or one
  // while the publishes are being finished, ends the process at once (as the signal's default would).
  const force = new AbortController();
  let phase: 'serving' | 'draining' | 'closing' = 'serving';
  await new Promise<void>((resolve) => {
    const signal = (name: 'SIGINT' | 'SIGTERM') => {
      if (phase === 'serving') {
        phase = 'draining';
        app.log.info({ signal: name, delaySeconds: config.shutdownDelaySeconds, timeoutSeconds: config.shutdownTimeoutSeconds }, 'stopping: finishing the requests in flight (send the signal again to stop at once)');
        resolve();
      } else if (phase === 'draining' && !force.signal.aborted) {
        app.log.warn({ signal: name }, 'stopping at once: requests still in flight are cut off');
        force.abort();
      } else {
        app.log.warn({ signal: name }, 'exiting now, without finishing the publishes under way (the next start or another node publishes what they leave)');
        process.exit(128 + (name === 'SIGINT' ? 2 : 15));
      }
    };
    process.on('SIGINT', () => signal('SIGINT'));
    process.on('SIGTERM', () => signal('SIGTERM'));
  });
  const { cutOff } = await server.drain({ delayMs: config.shutdownDelaySeconds * 1000, timeoutMs: config.shutdownTimeoutSeconds * 1000, force: force.signal });
  if (cutOff > 0) app.log.warn({ requests: cutOff }, 'stopping: requests still in flight were cut off');
  phase = 'closing';
  await app.close();
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`wharf: error USAGE: ${e.message}\n`);
      process.exitCode = 2;
    } else if (e instanceof ApiError || isWharfError(e)) {
      process.stderr.write(`wharf: error ${(e as { code: string }).code}: ${(e as Error).message}\n`);
      process.exitCode = 1;
    } else if (e instanceof Error && 'code' in e && String((e as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`wharf: error USAGE: ${e.message}\n`);
      process.exitCode = 2;
    } else {
      // One line, as every other error; the stack trace when asked for (WHARF_DEBUG=1), e.g. for a bug report.
      const detail = process.env.WHARF_DEBUG === '1' ? `\n${(e as Error)?.stack ?? ''}` : ' (WHARF_DEBUG=1 shows where)';
      process.stderr.write(`wharf: error INTERNAL: ${String((e as Error)?.message ?? e).split('\n')[0]}${detail}\n`);
      process.exitCode = 1;
    }
  },
);
