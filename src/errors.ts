// One registry of every error Wharf reports. Each error has a stable code (what scripts match on), an HTTP status
// (only the HTTP layer uses it) and a message template that tells the user what to change.

export const ERRORS = {
  // Request and input validation
  BAD_REQUEST: { status: 400, message: 'Invalid request: %s' },
  INVALID_NAME: { status: 400, message: 'Invalid %s "%s": use 1-64 characters from a-z, A-Z, 0-9, ".", "_", "+", "-", starting with a letter or digit' },
  INVALID_DISTRIBUTION: { status: 400, message: 'Invalid distribution "%s": expected OS/DIST such as debian/bookworm or ubuntu/jammy' },
  PAYLOAD_TOO_LARGE: { status: 413, message: 'Upload exceeds the limit of %s bytes (setting maxUploadBytes / WHARF_MAX_UPLOAD_BYTES)' },
  EMPTY_UPLOAD: { status: 400, message: 'The upload is empty: send the package file as the request body' },
  UNSUPPORTED_PACKAGE: { status: 415, message: '%s' },
  BATCH_INVALID: { status: 400, message: 'Invalid batch archive: %s (a batch push is a tar archive of package files, as `wharf push` sends)' },
  BATCH_PARTIAL: { status: 422, message: '%s of %s packages in the batch were refused; the others are stored and published (see "results")' },
  IMPORT_DISABLED: { status: 403, message: 'Importing from the server\'s directories is off: start the server with importRoots (WHARF_IMPORT_ROOTS) naming the directories it may read, or push the files with `wharf push`' },
  IMPORT_PATH_NOT_ALLOWED: { status: 403, message: 'The directory %s is not inside an import root of this server (importRoots: %s): move the files under one, or push them with `wharf push`' },
  IMPORT_PATH_INVALID: { status: 400, message: 'Invalid import path %s: %s' },
  IMPORT_TOO_MANY_FILES: { status: 413, message: 'The directory holds more than %s package files: import its subdirectories one at a time' },
  IMPORT_FILE_SKIPPED: { status: 422, message: 'Not imported: %s' },
  IMPORT_FILE_CHANGED: { status: 409, message: 'The file changed while it was being imported (%s): import it again once it is complete' },

  // Package format errors (.deb)
  DEB_NOT_AR: { status: 422, message: 'Not a Debian package: %s' },
  DEB_TRUNCATED: { status: 422, message: 'The .deb file is truncated: %s' },
  DEB_BAD_MEMBER: { status: 422, message: 'Malformed .deb archive: %s' },
  DEB_BAD_CONTROL_ARCHIVE: { status: 422, message: 'Malformed control archive in .deb: %s' },
  DEB_CONTROL_TOO_LARGE: { status: 422, message: 'The control archive or control file exceeds %s bytes once decompressed (a decompression bomb?)' },
  DEB_BAD_CONTROL: { status: 422, message: 'Invalid control file: %s' },
  DEB_BAD_FIELD: { status: 422, message: 'Invalid control field: %s' },

  // Package format errors (.rpm)
  RPM_NOT_RPM: { status: 422, message: 'Not an RPM package: %s' },
  RPM_TRUNCATED: { status: 422, message: 'The .rpm file is truncated: %s' },
  RPM_BAD_HEADER: { status: 422, message: 'Malformed RPM header: %s' },
  RPM_HEADER_TOO_LARGE: { status: 422, message: 'RPM header too large: %s' },
  RPM_BAD_TEXT: { status: 422, message: 'Invalid text in the RPM header: %s (control characters other than tab, newline and carriage return are not allowed; createrepo_c refuses such packages)' },

  // Authentication and authorisation
  UNAUTHORIZED: { status: 401, message: 'Authentication required: pass a token with --token, WHARF_TOKEN or an Authorization header' },
  FORBIDDEN: { status: 403, message: 'The token does not allow this operation' },
  TOKEN_EXISTS: { status: 409, message: 'A token named "%s" already exists here: revoke it first or choose another name' },
  TOKEN_NOT_FOUND: { status: 404, message: 'Token %s not found here' },
  INSECURE_TRANSPORT: { status: 403, message: 'HTTP Basic credentials over plain HTTP are refused, to keep them off the wire: use https:// (behind a TLS-terminating proxy, start Wharf with --trust-proxy)' },
  RATE_LIMITED: { status: 429, message: 'Too many failed authentication attempts from this address: retry after %s seconds' },
  RATE_LIMITED_REQUESTS: { status: 429, message: 'Too many requests: retry after %s seconds (limits: rateLimitPerIp / rateLimitPerToken)' },
  SIGNED_URL_INVALID: { status: 403, message: 'This download link is invalid or has expired: request the file again through the repository URL' },

  // Resources
  NOT_FOUND: { status: 404, message: '%s not found' },
  REPO_NOT_FOUND: { status: 404, message: 'Repository "%s" not found: create it with `wharf repo create %s`' },
  REPO_EXISTS: { status: 409, message: 'Repository "%s" already exists' },
  PACKAGE_NOT_FOUND: { status: 404, message: 'No package "%s" in %s' },
  PACKAGE_CONFLICT: { status: 409, message: '%s is already published in %s with different contents (sha256 %s): packages are immutable; bump the version to publish a change' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'Method %s is not allowed here' },
  RANGE_NOT_SATISFIABLE: { status: 416, message: 'Requested range not satisfiable' },

  // Server side
  PUBLISH_FAILED: { status: 500, message: 'Publishing %s failed: %s' },
  INTERNAL: { status: 500, message: 'Internal error' },
  CONFIG_INVALID: { status: 500, message: 'Invalid configuration: %s' },
  SIGNING_KEY_LOCKED: { status: 500, message: 'Cannot decrypt the signing key: %s (set the master key, WHARF_MASTER_KEY or WHARF_MASTER_KEY_FILE, to the one used when the key was created: every node sharing a database needs the same)' },
  SIGNING_KEY_INVALID: { status: 500, message: 'The signing key cannot be used: %s' },
  STORAGE_BAD_KEY: { status: 400, message: 'Invalid storage key "%s": %s' },

  // Trusted publishing (OIDC)
  ISSUER_INVALID: { status: 400, message: 'Invalid OIDC issuer: %s' },
  ISSUER_EXISTS: { status: 409, message: 'The OIDC issuer %s is already allowed%s' },
  ISSUER_NOT_FOUND: { status: 404, message: 'OIDC issuer %s is not allowed on this server: an admin adds it first (`wharf issuer add`)' },
  ISSUER_IN_USE: { status: 409, message: 'The OIDC issuer %s is still used by %s trusted publisher(s): remove them first' },
  PUBLISHER_INVALID: { status: 400, message: 'Invalid trusted publisher: %s' },
  PUBLISHER_EXISTS: { status: 409, message: 'This repository already trusts %s: remove that trusted publisher first to change it' },
  PUBLISHER_NOT_FOUND: { status: 404, message: 'Trusted publisher %s not found in this repository: list the repository\'s trusted publishers for the right id' },

  // Wharf JWT signing keys
  JWT_KEY_NONE_PUBLISHED: { status: 409, message: 'No published JWT signing key to switch to: run `wharf keys create`, wait until every node has refreshed its key set (%s seconds), then run `wharf keys rotate` again' },
  JWT_KEY_NO_ACTIVE: { status: 500, message: 'No JWT signing key is active: run `wharf keys create`, then `wharf keys rotate`' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;

function format(template: string, args: readonly unknown[]): string {
  let i = 0;
  return template.replace(/%s/g, () => String(args[i++] ?? ''));
}

export class WharfError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, args: readonly unknown[] = [], details?: Record<string, unknown>) {
    const def = ERRORS[code];
    super(format(def.message, args));
    this.name = 'WharfError';
    this.code = code;
    this.status = def.status;
    if (details) this.details = details;
  }

  /** An error made elsewhere (a worker thread) from its code and message; undefined for a code this registry lacks. */
  static restore(e: { code: string; message: string }): WharfError | undefined {
    if (!Object.hasOwn(ERRORS, e.code)) return undefined;
    const err = new WharfError(e.code as ErrorCode);
    err.message = e.message;
    return err;
  }
}

export function isWharfError(e: unknown): e is WharfError {
  return e instanceof WharfError;
}
