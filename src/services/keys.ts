// The OpenPGP key that signs repository metadata: generated on first use, stored encrypted with the signing
// passphrase, loaded once per process.
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { WharfError } from '../errors.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import type { Config } from '../config.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../signing/openpgp.ts';
import type { Logger } from '../log.ts';
import type { Locks } from './locks.ts';

export class KeyService {
  readonly #db: Db;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #keys = new Map<string, Promise<SigningKey>>();
  readonly #locks: Locks | undefined;

  /** `locks`: nodes sharing the database create each key once (the first to take the lock creates, the rest load). */
  constructor(db: Db, config: Config, log: Logger, locks?: Locks) {
    this.#db = db;
    this.#config = config;
    this.#log = log;
    this.#locks = locks;
  }

  /** The active key that signs repository metadata (InRelease, repomd.xml), created on first call if there is none. */
  metadataKey(): Promise<SigningKey> {
    return this.#key('metadata');
  }

  /**
   * The repository's key that signs its RPM packages on upload, created at the first need. One per repository and
   * separate from the metadata key, so that either can be rotated on its own and no repository can vouch for another.
   */
  packageKey(repoId: number): Promise<SigningKey> {
    return this.#key('package', repoId);
  }

  #key(purpose: string, repoId: number | null = null): Promise<SigningKey> {
    const id = `${purpose}:${repoId ?? ''}`;
    let k = this.#keys.get(id);
    if (!k) {
      const load = () => this.#loadOrCreate(purpose, repoId);
      const locks = this.#locks;
      // The lock only for creating: a key that exists loads without one (a publish holding its own lock never waits
      // for a second lock connection just to read a key).
      k = (locks ? this.#load(purpose, repoId).then((found) => found ?? locks.run('bootstrap', `key:${id}`, load)) : load()).catch((e) => {
        this.#keys.delete(id);
        throw e;
      });
      this.#keys.set(id, k);
    }
    return k;
  }

  #passphraseOnce?: Promise<string>;
  #urlSecrets?: Promise<Buffer[]>;

  /**
   * The secrets that sign download URLs, newest first (the newest signs, all verify). Created on first use; stored
   * encrypted (AES-256-GCM under a key derived from the signing passphrase). Separate from every other key.
   */
  urlSigningSecrets(): Promise<Buffer[]> {
    this.#urlSecrets ??= this.#loadUrlSecrets().catch((e) => {
      this.#urlSecrets = undefined;
      throw e;
    });
    return this.#urlSecrets;
  }

  /** Adds a new URL-signing secret; the previous ones keep verifying until trimmed. */
  async rotateUrlSigningSecret(): Promise<void> {
    await this.#storeSecret('url-signing', randomBytes(32));
    this.#urlSecrets = undefined;
  }

  /** Derived once (scrypt costs tens of milliseconds, and start-up unseals several secrets). */
  #sealingKey(): Promise<Buffer> {
    this.#sealingKeyOnce ??= this.#passphrase().then((p) => scryptSync(p, 'wharf/server-secrets/v1', 32));
    this.#sealingKeyOnce.catch(() => (this.#sealingKeyOnce = undefined));
    return this.#sealingKeyOnce;
  }

  #sealingKeyOnce?: Promise<Buffer>;

  /** Encrypts `value` for storage (AES-256-GCM under the key derived from the signing passphrase), as base64. */
  async seal(value: Buffer): Promise<string> {
    const key = await this.#sealingKey();
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    const sealed = Buffer.concat([iv, Buffer.alloc(16), c.update(value), c.final()]);
    c.getAuthTag().copy(sealed, 12);
    return sealed.toString('base64');
  }

  /** Decrypts what `seal` produced; SIGNING_KEY_LOCKED when the passphrase is not the one it was sealed with. */
  async unseal(text: string, what: string): Promise<Buffer> {
    const key = await this.#sealingKey();
    const sealed = Buffer.from(text, 'base64');
    const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
    d.setAuthTag(sealed.subarray(12, 28));
    try {
      return Buffer.concat([d.update(sealed.subarray(28)), d.final()]);
    } catch {
      throw new WharfError('SIGNING_KEY_LOCKED', [`${what} does not decrypt with this passphrase`]);
    }
  }

  async #storeSecret(purpose: string, value: Buffer): Promise<void> {
    await this.#db.insertInto('server_secrets').values({ purpose, value_encrypted: await this.seal(value), created_at: Date.now(), active: 1 }).execute();
  }

  async #loadUrlSecrets(): Promise<Buffer[]> {
    const load = () =>
      this.#db.selectFrom('server_secrets').select(['value_encrypted']).where('purpose', '=', 'url-signing').where('active', '=', 1).orderBy('id', 'desc').execute();
    let rows = await load();
    if (rows.length === 0) {
      await this.#storeSecret('url-signing', randomBytes(32));
      rows = await load();
    }
    return Promise.all(rows.map((r) => this.unseal(r.value_encrypted, 'the URL-signing secret')));
  }

  #passphrase(): Promise<string> {
    this.#passphraseOnce ??= this.#readOrCreatePassphrase();
    return this.#passphraseOnce;
  }

  async #readOrCreatePassphrase(): Promise<string> {
    if (this.#config.masterKey) return this.#config.masterKey;
    // Embedded default: a random passphrase kept beside the data. It protects backups of the database alone;
    // production setups give WHARF_MASTER_KEY (or a key file) and keep it elsewhere.
    const file = join(this.#config.dataDir, 'signing-passphrase');
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const pass = randomBytes(32).toString('base64url');
    await writeFile(file, pass + '\n', { mode: 0o600, flag: 'wx' });
    this.#log.warn({ file }, 'no master key configured: generated one into the data directory (set WHARF_MASTER_KEY in production, the same on every node)');
    return pass;
  }

  async #load(purpose: string, repoId: number | null): Promise<SigningKey | undefined> {
    const row = await this.#activeKeyRow(purpose, repoId);
    return row ? loadSigningKey(row.private_armored, await this.#passphrase()) : undefined;
  }

  #activeKeyRow(purpose: string, repoId: number | null) {
    return this.#db
      .selectFrom('signing_keys')
      .select(['private_armored'])
      .where('purpose', '=', purpose)
      .where('repo_id', repoId === null ? 'is' : '=', repoId)
      .where('active', '=', 1)
      .orderBy('id', 'desc')
      .executeTakeFirst();
  }

  async #loadOrCreate(purpose: string, repoId: number | null): Promise<SigningKey> {
    const passphrase = await this.#passphrase();
    const row = await this.#activeKeyRow(purpose, repoId);
    if (row) return loadSigningKey(row.private_armored, passphrase);
    const started = Date.now();
    const generated = await generateSigningKey({ userId: { name: `Wharf ${purpose} signing key` }, passphrase });
    await this.#db
      .insertInto('signing_keys')
      .values({
        purpose,
        fingerprint: generated.fingerprint,
        public_armored: generated.armoredPublicKey,
        private_armored: generated.armoredPrivateKey,
        created_at: Date.now(),
        active: 1,
        repo_id: repoId,
      })
      .execute();
    this.#log.info({ purpose, repoId, fingerprint: generated.fingerprint, ms: Date.now() - started }, 'generated signing key');
    return loadSigningKey(generated.armoredPrivateKey, passphrase);
  }
}
