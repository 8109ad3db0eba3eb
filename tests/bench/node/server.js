'use strict';
/*
 * make bench, target (g): the stack dashcache replaces, a Fastify + ioredis
 * cache-aside service for GET /api/dashboard/orgs/{orgId}/units/status, one
 * Node process behind the bench's nginx (proxy_pass to an upstream with
 * keepalive). What it does on every request:
 *   - verifies the Bearer token as dashcache does: compact JWS, HS256 with the
 *     key of AUTH_KEYS_FILE named by kid (Node's crypto HMAC and a
 *     constant-time compare), exp and nbf, the organization among the token's
 *     orgs ("*" only with a key marked all-orgs), scope "read";
 *     401 / 403 / 400 otherwise. Unlike dashcache it keeps no cache of
 *     verified tokens: each request parses and checks the signature, as
 *     @fastify/jwt does by default;
 *   - one Redis GET (ioredis, one connection, default options) of a key of its
 *     own, NODE_KEY_PREFIX + orgId, that the bench fills with dashcache's hit
 *     body; a hit is sent as stored, a Buffer (no UTF-8 decoding, no JSON
 *     parse and re-serialisation, and Fastify adds no charset), with the same
 *     Content-Type, Cache-Control and X-Cache as dashcache's hit.
 * What it does not do: the miss path. A miss answers 503 instead of querying
 * PostgreSQL and filling the cache; the bench measures hits only and fails if
 * it sees one. No metrics, no logging per request.
 *
 * Environment: NODE_HOST, NODE_PORT (listen), REDIS_HOST + REDIS_PORT or
 * REDIS_PATH (unix socket), AUTH_KEYS_FILE, NODE_KEY_PREFIX.
 */
const crypto = require('node:crypto');
const fs = require('node:fs');
const Fastify = require('fastify');
const Redis = require('ioredis');

const env = process.env;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/* AUTH_KEYS_FILE as dashcache reads it: "kid HS256 base64url-secret [all-orgs]" lines. */
function loadKeys(path) {
  const keys = new Map();
  for (const raw of fs.readFileSync(path, 'utf8').split('\n')) {
    const f = raw.split('#', 1)[0].trim().split(/\s+/);
    if ((f.length === 3 || f.length === 4) && f[1] === 'HS256') {
      keys.set(f[0], { secret: Buffer.from(f[2], 'base64url'), allOrgs: f[3] === 'all-orgs' });
    }
  }
  if (keys.size === 0) throw new Error(`${path}: no HS256 key`);
  return keys;
}

const keys = loadKeys(env.AUTH_KEYS_FILE);
const prefix = env.NODE_KEY_PREFIX || 'node:';

function json64(part) {
  try {
    const v = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v !== null && typeof v === 'object' ? v : null;
  } catch {
    return null;
  }
}

/* The claims of a valid token for orgId and scope read, or [status, code]. */
function authorize(header, orgId) {
  if (typeof header !== 'string' || !header.startsWith('Bearer ')) return [401, 'unauthorized'];
  const parts = header.slice(7).split('.');
  if (parts.length !== 3) return [401, 'unauthorized'];
  const head = json64(parts[0]);
  const key = head && head.alg === 'HS256' && keys.get(head.kid);
  if (!key) return [401, 'unauthorized'];
  const want = crypto.createHmac('sha256', key.secret).update(`${parts[0]}.${parts[1]}`).digest();
  const got = Buffer.from(parts[2], 'base64url');
  if (got.length !== want.length || !crypto.timingSafeEqual(got, want)) return [401, 'unauthorized'];
  const c = json64(parts[1]);
  const now = Date.now() / 1000;
  if (!c || typeof c.exp !== 'number' || c.exp <= now || (typeof c.nbf === 'number' && c.nbf > now)) {
    return [401, 'unauthorized'];
  }
  const orgs = Array.isArray(c.orgs) ? c.orgs : [];
  if (!(orgs.includes(orgId) || (key.allOrgs && orgs.includes('*')))) return [403, 'forbidden'];
  if (typeof c.scope !== 'string' || !c.scope.split(' ').includes('read')) return [403, 'forbidden'];
  return c;
}

function fail(reply, status, code, message) {
  reply.code(status).header('content-type', 'application/json').header('cache-control', 'no-store');
  if (status === 401) reply.header('www-authenticate', 'Bearer');
  return JSON.stringify({ error: { code, message } });
}

const redis = env.REDIS_PATH
  ? new Redis({ path: env.REDIS_PATH })
  : new Redis({ host: env.REDIS_HOST || '127.0.0.1', port: Number(env.REDIS_PORT) });
const app = Fastify({ logger: false });

app.get('/api/dashboard/orgs/:orgId/units/status', async (req, reply) => {
  const { orgId } = req.params;
  if (!UUID.test(orgId)) return fail(reply, 400, 'invalid_id', 'orgId must be a UUID');
  const auth = authorize(req.headers.authorization, orgId);
  if (Array.isArray(auth)) return fail(reply, auth[0], auth[1], 'token refused');
  const cached = await redis.getBuffer(prefix + orgId);
  if (cached === null) {
    return fail(reply, 503, 'miss_not_implemented', 'the bench baseline answers hits only');
  }
  reply.header('content-type', 'application/json').header('cache-control', 'no-store').header('x-cache', 'HIT');
  return cached;
});

app.listen({ host: env.NODE_HOST || '127.0.0.1', port: Number(env.NODE_PORT) }).catch((err) => {
  console.error(err);
  process.exit(1);
});
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    app.close().finally(() => redis.quit().finally(() => process.exit(0)));
  });
}
