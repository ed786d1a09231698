// The OpenAPI description of /api/v1, served at /api/v1/openapi.json.
import { ERRORS } from '../errors.ts';

const repoParams = [
  { name: 'org', in: 'path', required: true, schema: { type: 'string' } },
  { name: 'repo', in: 'path', required: true, schema: { type: 'string' } },
];
const distParams = [
  ...repoParams,
  { name: 'os', in: 'path', required: true, schema: { type: 'string' }, description: 'e.g. debian, ubuntu, any' },
  { name: 'dist', in: 'path', required: true, schema: { type: 'string' }, description: 'e.g. bookworm, jammy, any' },
];
const error = { $ref: '#/components/responses/Error' };
const orgParams = [{ name: 'org', in: 'path', required: true, schema: { type: 'string' } }];
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'integer' } };

function tokenCollection(params: object[], what: string): object {
  return {
    get: { parameters: params, summary: `List the deploy tokens of ${what} (never their secrets)`, responses: { 200: { description: '{"tokens": [Token]}' }, 404: error } },
    post: {
      parameters: params,
      summary: `Create a deploy token for ${what}; the secret is in this response only`,
      requestBody: {
        required: true,
        content: {
          'application/json': {
            schema: {
              type: 'object',
              required: ['name'],
              properties: {
                name: { type: 'string' },
                scopes: { type: 'array', items: { type: 'string', enum: ['read', 'push', 'write', 'admin'] }, default: ['read'] },
                expires_at: { type: 'string', format: 'date-time' },
              },
            },
          },
        },
      },
      responses: { 201: { description: '{"token": {"id","name","username","token","scopes","expires_at"}}' }, 400: error, 409: error },
    },
  };
}

function tokenItem(params: object[]): object {
  return { delete: { parameters: [...params, idParam], summary: 'Revoke a token (effective within 5 seconds)', responses: { 200: { description: '{"revoked": id}' }, 404: error } } };
}

function tokenRotate(params: object[]): object {
  return {
    post: {
      parameters: [...params, idParam],
      summary: 'Issue a new secret; the old one stays valid for grace_seconds (default 86400)',
      requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { grace_seconds: { type: 'integer' } } } } } },
      responses: { 200: { description: '{"token": {...}}' }, 404: error },
    },
  };
}

export function openApiDocument(serverUrl: string): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'Wharf API',
      version: '1',
      description:
        'Manage repositories and publish Debian and RPM packages. Outside /api/v1: GET /.well-known/openid-configuration and /.well-known/jwks.json ' +
        "(Wharf's token issuer), GET /_/oidc/audience and POST /_/oidc/mint-token (trusted publishing: docs/trusted-publishing.md).",
    },
    servers: [{ url: `${serverUrl}/api/v1` }],
    security: [{ bearer: [] }, { basic: [] }],
    paths: {
      '/repos': {
        get: { summary: 'List repositories', responses: { 200: { description: '{"repositories": [Repository]}' }, 401: error } },
        post: {
          summary: 'Create a repository (the organisation is created as needed)',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: { type: 'object', required: ['name'], properties: {
                    name: { type: 'string', example: 'acme/tools' },
                    private: { type: 'boolean' },
                    sign_packages: { type: 'boolean', default: true, description: 're-sign RPMs with the package key on upload' },
                    deploy_token: { type: 'boolean', default: true, description: 'for a private repository: create a read-only deploy token "default-deploy"' },
                  },
                },
              },
            },
          },
          responses: { 201: { description: '{"repository": Repository}' }, 400: error, 409: error },
        },
      },
      '/repos/{org}/{repo}': { get: { parameters: repoParams, summary: 'One repository', responses: { 200: { description: 'Repository' }, 404: error } } },
      '/repos/{org}/{repo}/packages': {
        get: {
          parameters: [...repoParams, { name: 'distribution', in: 'query', schema: { type: 'string' }, description: 'OS/DIST' }],
          summary: 'List packages',
          responses: { 200: { description: '{"packages": [Package]}' }, 404: error },
        },
      },
      '/repos/{org}/{repo}/distributions/{os}/{dist}/packages': {
        get: { parameters: distParams, summary: 'List the packages of a distribution', responses: { 200: { description: '{"packages": [Package]}' } } },
        post: {
          parameters: [
            ...distParams,
            {
              name: 'Prefer',
              in: 'header',
              required: false,
              description:
                'respond-async (RFC 7240): answer 202 once the package is stored (its file and row are durable); the signed metadata follows with the ' +
                'pushes around it. Refusals (conflicts, bad packages) are still answered at once. The answer carries Preference-Applied: respond-async.',
              schema: { type: 'string' },
            },
          ],
          summary:
            'Push a package: the request body is the .deb or .rpm file, streamed. Answers once the signed metadata including it is live (unless Prefer: respond-async). ' +
            'With Content-Type application/x-tar the body is a tar archive of several package files (plain file names, regular files only; what `wharf push` sends for ' +
            'several files): each is checked and stored like a single push, then one publish lists them all.',
          requestBody: {
            required: true,
            content: {
              'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
              'application/vnd.debian.binary-package': { schema: { type: 'string', format: 'binary' } },
              'application/x-rpm': { schema: { type: 'string', format: 'binary' } },
              'application/x-tar': { schema: { type: 'string', format: 'binary', description: 'a batch: up to 20,000 package files' } },
            },
          },
          responses: {
            201: { description: '{"status": "created", "package": Package}; a batch: {"results": [{"file", "status", "package"}], "generation"}' },
            200: { description: '{"status": "unchanged", "package": Package}: the identical file was already published (a batch: every file was)' },
            202: { description: 'Prefer: respond-async: stored, metadata to follow; the body as for 201/200 (a batch: no "generation")' },
            400: error,
            409: error,
            413: error,
            415: error,
            422: { description: 'a batch with refused files: {"error": {"code": "BATCH_PARTIAL"}, "results": [...]} (the other files are stored and published)' },
          },
        },
      },
      '/repos/{org}/{repo}/distributions/{os}/{dist}/import': {
        post: {
          parameters: distParams,
          summary:
            'Import the .rpm and .deb files of a directory on the server (inside its importRoots; server admin token only) without uploading them: each file is ' +
            'checked like a push, reported in "results" like a batch, and one publish lists them all. "link": hard-link the files into the tree instead of copying ' +
            'them (they must then never be modified in place). Prefer: respond-async answers 202 once stored.',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['path'],
                  properties: {
                    path: { type: 'string', description: 'absolute path of the directory, as the server sees it' },
                    link: { type: 'boolean', default: false },
                    recursive: { type: 'boolean', default: true, description: 'also the subdirectories (not hidden ones)' },
                  },
                },
              },
            },
          },
          responses: {
            201: { description: '{"results": [{"file", "status", "package"}], "generation"} (file: the path relative to the directory)' },
            200: { description: 'every file was already published' },
            202: { description: 'Prefer: respond-async: stored, metadata to follow' },
            400: error,
            403: { description: 'FORBIDDEN (not the server admin), IMPORT_DISABLED (no importRoots), IMPORT_PATH_NOT_ALLOWED (outside them)' },
            413: error,
            422: { description: 'some files refused: {"error": {"code": "BATCH_PARTIAL"}, "results": [...]} (the others are stored and published)' },
          },
        },
      },
      '/repos/{org}/{repo}/tokens': tokenCollection(repoParams, 'a repository'),
      '/repos/{org}/{repo}/tokens/{id}': tokenItem(repoParams),
      '/repos/{org}/{repo}/tokens/{id}/rotate': tokenRotate(repoParams),
      '/orgs/{org}/tokens': tokenCollection(orgParams, 'an organisation (every repository in it)'),
      '/orgs/{org}/tokens/{id}': tokenItem(orgParams),
      '/orgs/{org}/tokens/{id}/rotate': tokenRotate(orgParams),
      '/repos/{org}/{repo}/publishers': {
        get: { parameters: repoParams, summary: 'List the trusted publishers of a repository (repository admin)', responses: { 200: { description: '{"publishers": [Publisher]}' }, 404: error } },
        post: {
          parameters: repoParams,
          summary: 'Trust a CI workflow to publish to this repository without a stored secret (docs/trusted-publishing.md)',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['provider', 'project', 'workflow'],
                  properties: {
                    provider: { type: 'string', enum: ['gitlab', 'github'] },
                    project: { type: 'string', description: 'GitLab GROUP/PROJECT path or GitHub OWNER/REPO' },
                    workflow: { type: 'string', description: 'GitLab: CI file path (ci/release.yml); GitHub: workflow file name (release.yml)' },
                    environment: { type: 'string' },
                    issuer: { type: 'string', description: 'default: https://gitlab.com or GitHub Actions; others must be added with POST /issuers' },
                    owner_id: { type: 'string', description: 'GitHub repository_owner_id to bind now (otherwise bound on first use)' },
                  },
                },
              },
            },
          },
          responses: { 201: { description: '{"publisher": Publisher}' }, 400: error, 404: error },
        },
      },
      '/repos/{org}/{repo}/publishers/{id}': { delete: { parameters: [...repoParams, idParam], summary: 'Remove a trusted publisher', responses: { 200: { description: '{"removed": id}' }, 404: error } } },
      '/issuers': {
        get: { summary: 'OIDC issuers allowed for trusted publishing, built-in ones included (server admin)', responses: { 200: { description: '{"issuers": [Issuer]}' }, 403: error } },
        post: {
          summary: 'Allow another OIDC issuer (https only), such as a self-managed GitLab (server admin)',
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['url', 'type'],
                  properties: { url: { type: 'string' }, type: { type: 'string', enum: ['gitlab', 'github'] }, allow_private_network: { type: 'boolean', default: false } },
                },
              },
            },
          },
          responses: { 201: { description: '{"issuer": Issuer}' }, 400: error, 409: error },
        },
      },
      '/issuers/{id}': { delete: { parameters: [idParam], summary: 'Remove an issuer', responses: { 200: { description: '{"removed": id}' }, 404: error } } },
      '/keys': {
        get: { summary: "The keys that sign Wharf's JWTs: kid, state (published, active, retired), dates (server admin)", responses: { 200: { description: '{"keys": [Key]}' } } },
        post: { summary: 'Create and publish a new key; it signs nothing until rotate', responses: { 201: { description: '{"key": Key}' } } },
      },
      '/keys/rotate': { post: { summary: 'The newest published key starts signing; the previous one is retired (still verifies)', responses: { 200: { description: '{"active": Key, "retired": Key|null}' }, 409: error } } },
      '/keys/trim': {
        post: {
          summary: 'Remove retired keys whose tokens have all expired (force: all retired keys now)',
          requestBody: { content: { 'application/json': { schema: { type: 'object', properties: { force: { type: 'boolean' } } } } } },
          responses: { 200: { description: '{"trimmed": [Key]}' } },
        },
      },
      '/repos/{org}/{repo}/distributions/{os}/{dist}/packages/{filename}': {
        delete: {
          parameters: [...distParams, { name: 'filename', in: 'path', required: true, schema: { type: 'string' } }],
          summary: 'Yank (remove) a package and republish',
          responses: { 200: { description: '{"yanked": Package}' }, 404: error },
        },
      },
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } },
      responses: {
        Error: {
          description: 'An error with a stable code',
          content: {
            'application/json': {
              schema: {
                type: 'object',
                properties: {
                  error: { type: 'object', properties: { code: { type: 'string', enum: Object.keys(ERRORS) }, message: { type: 'string' } } },
                },
              },
            },
          },
        },
      },
    },
  };
}
