// The OpenPGP key that signs repository metadata: generated on first use, stored encrypted with the signing
// passphrase, loaded once per process.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Db } from '../db/database.ts';
import type { Config } from '../config.ts';
import { generateSigningKey, loadSigningKey, type SigningKey } from '../signing/openpgp.ts';
import type { Logger } from '../log.ts';

export class KeyService {
  readonly #db: Db;
  readonly #config: Config;
  readonly #log: Logger;
  readonly #keys = new Map<string, Promise<SigningKey>>();

  constructor(db: Db, config: Config, log: Logger) {
    this.#db = db;
    this.#config = config;
    this.#log = log;
  }

  /** The active key that signs repository metadata (InRelease, repomd.xml), created on first call if there is none. */
  metadataKey(): Promise<SigningKey> {
    return this.#key('metadata');
  }

  /**
   * The active key that signs RPM packages on upload. Separate from the metadata key, so that either can be rotated
   * or kept offline-recoverable on its own.
   */
  packageKey(): Promise<SigningKey> {
    return this.#key('package');
  }

  #key(purpose: string): Promise<SigningKey> {
    let k = this.#keys.get(purpose);
    if (!k) {
      k = this.#loadOrCreate(purpose).catch((e) => {
        this.#keys.delete(purpose);
        throw e;
      });
      this.#keys.set(purpose, k);
    }
    return k;
  }

  #passphraseOnce?: Promise<string>;

  #passphrase(): Promise<string> {
    this.#passphraseOnce ??= this.#readOrCreatePassphrase();
    return this.#passphraseOnce;
  }

  async #readOrCreatePassphrase(): Promise<string> {
    if (this.#config.signingPassphrase) return this.#config.signingPassphrase;
    // Embedded default: a random passphrase kept beside the data. It protects backups of the database alone;
    // production setups give WHARF_SIGNING_PASSPHRASE (or signingPassphrase) and keep it elsewhere.
    const file = join(this.#config.dataDir, 'signing-passphrase');
    try {
      return (await readFile(file, 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    const pass = randomBytes(32).toString('base64url');
    await writeFile(file, pass + '\n', { mode: 0o600, flag: 'wx' });
    this.#log.warn({ file }, 'no signing passphrase configured: generated one into the data directory (set WHARF_SIGNING_PASSPHRASE in production)');
    return pass;
  }

  async #loadOrCreate(purpose: string): Promise<SigningKey> {
    const passphrase = await this.#passphrase();
    const row = await this.#db
      .selectFrom('signing_keys')
      .select(['private_armored'])
      .where('purpose', '=', purpose)
      .where('active', '=', 1)
      .orderBy('id', 'desc')
      .executeTakeFirst();
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
      })
      .execute();
    this.#log.info({ purpose, fingerprint: generated.fingerprint, ms: Date.now() - started }, 'generated signing key');
    return loadSigningKey(generated.armoredPrivateKey, passphrase);
  }
}
