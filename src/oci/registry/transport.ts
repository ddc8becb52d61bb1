/**
 * One HTTP exchange with a registry or token service over node:http(s) (faster to start than fetch in a fresh
 * process, and keep-alive agents with a bounded socket count). Bodies are Buffers, so any request can be sent again
 * after a re-authentication or a retry. Network failures and timeouts become TransientError naming the URL without
 * its query (upload URLs carry signed state, token URLs carry scopes).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { TransientError, errorMessage } from '../../errors.js';
import { displayUrl } from '../../net/http.js';
import { parseRetryAfter } from '../../net/retry.js';

export interface Exchange {
  method: string;
  url: URL;
  headers?: Record<string, string>;
  /** Several buffers are sent one after the other, as one body: an upload chunk is not joined into one first. */
  body?: Buffer | Buffer[];
  /** Inactivity timeout: no bytes either way for this long fails the request. */
  timeoutMs: number;
  /** Largest successful body accepted; error bodies are cut to 64 KiB instead. */
  maxBody: number;
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  url: URL;
}

/** The push-wide retry budget is spent: retrying anything else against this registry would only be refused. */
export class RetryBudgetExhausted extends TransientError {}

/** Whether an outer loop (e.g. re-reading a layer) may try again after this error. */
export function isRetryable(e: unknown): boolean {
  return e instanceof TransientError && !(e instanceof RetryBudgetExhausted);
}

const ERROR_BODY_LIMIT = 64 * 1024;

export interface Agents {
  http: http.Agent;
  https: https.Agent;
}

export function createAgents(maxSockets: number): Agents {
  const opts = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo' as const };
  return { http: new http.Agent(opts), https: new https.Agent(opts) };
}

export function header(reply: Pick<Reply, 'headers'>, name: string): string | undefined {
  const v = reply.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function send(ex: Exchange, agents: Agents): Promise<Reply> {
  const isHttps = ex.url.protocol === 'https:';
  const client = isHttps ? https : http;
  const what = `${ex.method} ${displayUrl(ex.url.href)}`;
  const headers: Record<string, string> = { 'user-agent': 'flake-ci', ...ex.headers };
  const parts = ex.body === undefined ? [] : Buffer.isBuffer(ex.body) ? [ex.body] : ex.body;
  if (ex.body) headers['content-length'] = String(parts.reduce((n, b) => n + b.length, 0));
  else if (ex.method === 'PUT' || ex.method === 'POST' || ex.method === 'PATCH') headers['content-length'] = '0';
  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    const wrap = (e: unknown) => fail(new TransientError(`${what} failed: ${errorMessage(e)}`));
    const req = client.request(
      ex.url,
      { method: ex.method, headers, agent: isHttps ? agents.https : agents.http, timeout: ex.timeoutMs },
      (res) => {
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status < 300;
        const limit = ok ? ex.maxBody : ERROR_BODY_LIMIT;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          if (size >= limit) return;
          size += chunk.length;
          chunks.push(chunk);
          if (size > limit && ok) {
            fail(new Error(`${what}: the answer is larger than ${limit} bytes`));
            res.destroy();
          }
        });
        res.on('error', wrap);
        res.on('end', () => {
          if (settled) return;
          // A connection closed early ends the stream cleanly: compare with Content-Length.
          const expected = Number(res.headers['content-length']);
          const body = Buffer.concat(chunks);
          if (ex.method !== 'HEAD' && Number.isFinite(expected) && size < limit && body.length !== expected)
            return fail(
              new TransientError(`${what}: the answer was cut off after ${body.length} of ${expected} bytes`),
            );
          settled = true;
          resolve({ status, headers: res.headers, body: size > limit ? body.subarray(0, limit) : body, url: ex.url });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no progress within ${Math.round(ex.timeoutMs / 100) / 10} s`)));
    req.on('error', wrap);
    for (const part of parts) req.write(part);
    req.end();
  });
}

/** 429 and 5xx are worth retrying; Retry-After (seconds or a date) is carried to the backoff. */
export function transientStatus(reply: Reply, what: string): TransientError | undefined {
  if (reply.status !== 429 && reply.status < 500) return undefined;
  const detail = registryErrorText(reply);
  return new TransientError(
    `${what} answered ${reply.status}${detail ? `: ${detail}` : ''}`,
    parseRetryAfter(header(reply, 'retry-after')),
  );
}

/** The registry's `{"errors":[{code,message,detail}]}` as one line, or the start of a plain-text body. */
export function registryErrorText(reply: Reply): string {
  const text = reply.body.toString('utf8');
  try {
    const parsed = JSON.parse(text) as { errors?: { code?: string; message?: string; detail?: unknown }[] };
    if (Array.isArray(parsed.errors) && parsed.errors.length)
      return parsed.errors
        .map((e) => [e.code, e.message].filter(Boolean).join(' ') + (e.detail ? ` (${JSON.stringify(e.detail)})` : ''))
        .join('; ')
        .slice(0, 500);
  } catch {
    // not JSON: fall through
  }
  return text.replace(/\s+/g, ' ').trim().slice(0, 200);
}
