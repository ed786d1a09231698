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
  #metadataKey?: Promise<SigningKey>;

  constructor(db: Db, config: Config, log: Logger) {
    this.#db = db;
    this.#config = config;
    this.#log = log;
  }

  /** The active metadata signing key, created on first call if there is none. */
  metadataKey(): Promise<SigningKey> {
    this.#metadataKey ??= this.#loadOrCreate('metadata').catch((e) => {
      this.#metadataKey = undefined;
      throw e;
    });
    return this.#metadataKey;
  }

  async #passphrase(): Promise<string> {
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
