// An HTTP proxy on 127.0.0.1 in front of a registry that injects faults per rule (method + path regex): a status
// (500, 429 with Retry-After), a connection dropped after N request-body bytes (forwarded to the registry or not),
// a response lost after the registry handled the request, a stall, or a redirect. The Host header is passed through,
// so the registry's Location headers point back at the proxy. Plain JS so benchmarks can share it.
import { createServer, request } from 'node:http';

/**
 * Rule: { method?, path?: RegExp, skip?: number (let the first N matches through), times?: number (default: every
 * time), action } where action is one of
 *   { status, headers?, body? }                     answer without asking the registry
 *   { dropAfterBytes, forward? = true }              cut the connection after N body bytes (sent on, or not)
 *   { dropResponse: true }                           let the registry handle it, then cut before answering
 *   { stallMs }                                      wait, then forward (Infinity: never answer)
 *   { redirect, status? = 307 }                      send the client elsewhere
 */
export async function startFaultProxy({ target }) {
  const upstream = new URL(target);
  const rules = [];
  const log = [];
  const sockets = new Set();
  const timers = new Set();

  const match = (req) => {
    const path = req.url ?? '/';
    for (const rule of rules) {
      if (rule.times !== undefined && rule.hits >= rule.times) continue;
      if (rule.method && rule.method !== req.method) continue;
      if (rule.path && !rule.path.test(path)) continue;
      if (rule.skip && rule.skipped < rule.skip) {
        rule.skipped++;
        return undefined;
      }
      rule.hits++;
      return rule;
    }
    return undefined;
  };

  const forward = (req, res, opts = {}) => {
    const up = request({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent: false,
    });
    up.on('error', () => res.destroy());
    up.on('response', (ures) => {
      if (opts.dropResponse) {
        ures.resume();
        ures.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(ures.statusCode ?? 502, ures.headers);
      ures.pipe(res);
    });
    if (opts.dropAfterBytes === undefined) {
      req.pipe(up);
      return;
    }
    let seen = 0;
    req.on('data', (chunk) => {
      const room = opts.dropAfterBytes - seen;
      seen += chunk.length;
      if (room > 0) up.write(room >= chunk.length ? chunk : chunk.subarray(0, room));
      if (seen >= opts.dropAfterBytes) {
        req.pause();
        // Give the registry a moment to take the bytes already sent, then cut both sides as a network would.
        const t = setTimeout(() => {
          timers.delete(t);
          up.destroy();
          req.socket.destroy();
        }, 100);
        timers.add(t);
      }
    });
    req.on('end', () => up.end());
  };

  const server = createServer((req, res) => {
    const rule = match(req);
    log.push({
      method: req.method,
      path: req.url,
      host: req.headers.host,
      authorization: req.headers.authorization !== undefined,
      contentRange: req.headers['content-range'],
      fault: rule?.name,
    });
    const action = rule?.action;
    if (!action) return forward(req, res);
    if (action.status !== undefined && action.redirect === undefined) {
      req.resume();
      const body =
        action.body ?? JSON.stringify({ errors: [{ code: 'UNKNOWN', message: `injected ${action.status}` }] });
      res.writeHead(action.status, { 'content-type': 'application/json', ...(action.headers ?? {}) });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    if (action.redirect !== undefined) {
      req.resume();
      res.writeHead(action.status ?? 307, { location: action.redirect }).end();
      return;
    }
    if (action.dropAfterBytes !== undefined) {
      if (action.forward === false) {
        let seen = 0;
        req.on('data', (chunk) => {
          seen += chunk.length;
          if (seen >= action.dropAfterBytes) req.socket.destroy();
        });
        req.on('end', () => req.socket.destroy());
        return;
      }
      return forward(req, res, { dropAfterBytes: action.dropAfterBytes });
    }
    if (action.dropResponse) return forward(req, res, { dropResponse: true });
    if (action.stallMs !== undefined) {
      if (action.stallMs === Infinity) return; // the socket is destroyed by the client's timeout or by stop()
      const t = setTimeout(() => {
        timers.delete(t);
        forward(req, res);
      }, action.stallMs);
      timers.add(t);
      return;
    }
    forward(req, res);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;

  return {
    url: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    port,
    log,
    /** Adds a rule (checked in order, first match wins) and returns it; `rule.hits` counts its matches. */
    addRule(rule) {
      const r = { ...rule, hits: 0, skipped: 0 };
      rules.push(r);
      return r;
    },
    clearRules() {
      rules.length = 0;
    },
    /** Requests seen so far, optionally only those matching method and path. */
    count(method, path) {
      return log.filter((l) => (!method || l.method === method) && (!path || path.test(l.path))).length;
    },
    async stop() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
