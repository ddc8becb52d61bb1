/**
 * Downloading and decompressing a cache entry without node touching the compressed bytes: `curl` writes the body into
 * a kernel pipe that `zstd -d` reads, and node only reads what zstd writes. Piping the download through node cost
 * about as much CPU as parsing and hashing every NAR (an HTTP parser, a read and a write per 64 KB, the garbage).
 *
 * - The URL is a credential (a SAS URL): it reaches curl in a config on its stdin (`--config -`), never in argv,
 *   where any user of the machine could read it. `-q` first: no ~/.curlrc. Only http(s), as node's own request.
 * - Node keeps its own write end of zstd's stdin open while curl runs. When curl fails part-way (a cut connection, a
 *   stall, an HTTP error), its `--write-out` says how many body bytes reached the pipe, and node's `download` goes on
 *   from there with Range requests and its own retries, into the same zstd: the resume semantics of the node path.
 * - Without a usable curl (none, or older than 7.63) or zstd: entry-stream.ts's decompressTo, all through node.
 */
import { execFile, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { TransientError } from '../errors.js';
import { download, drainTo, type DrainState } from './entry-stream.js';

const MARK = 'flake-ci-curl';

/**
 * Whether `curl --version` names a curl that can send --write-out to stderr (`%{stderr}`, curl 7.63.0, 2018): an
 * older one would write it into the stream, after the entry's last byte, and every restore would fail.
 */
export function curlVersionOk(versionText: string): boolean {
  const m = /^curl (\d+)\.(\d+)\./.exec(versionText);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 7 || (major === 7 && minor >= 63);
}

/** Asks `curl` for its version (a few ms, run while the entry is looked up); false when it cannot be used. */
export function usableCurl(curl: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(curl, ['--version'], { timeout: 10_000 }, (err, stdout) => resolve(!err && curlVersionOk(stdout)));
  });
}

/** curl's arguments: fixed, the URL is not among them. */
export function curlArgs(): string[] {
  return [
    '-q',
    '--silent',
    '--show-error',
    '--fail',
    '--proto',
    '=http,https',
    '--connect-timeout',
    '60',
    // What node's 60 s socket timeout does: give up on a connection that stalls for a minute.
    '--speed-limit',
    '1',
    '--speed-time',
    '60',
    '--write-out',
    `%{stderr}\\n${MARK} %{http_code} %{size_download}\\n`,
    '--config',
    '-',
  ];
}

/** The config curl reads on stdin: the URL, quoted as curl's config syntax wants. */
export function curlConfig(url: string): string {
  // href: no raw whitespace or control characters survive URL parsing; quotes and backslashes are escaped.
  const href = new URL(url).href;
  return `url = "${href.replace(/[\\"]/g, (c) => `\\${c}`)}"\n`;
}

/** How curl ended: its exit code, and what its --write-out said (absent when it was killed before writing it). */
export function curlOutcome(stderr: string): { status?: number; bytes?: number; message: string } {
  const marks = [...stderr.matchAll(new RegExp(`^${MARK} (\\d+) (\\d+)$`, 'gm'))];
  const last = marks.at(-1);
  const message = stderr
    .replace(new RegExp(`^${MARK} .*$`, 'gm'), '')
    .trim()
    .replace(/^curl: /, '');
  if (!last) return { message };
  return { status: Number(last[1]), bytes: Number(last[2]), message };
}

function write(sink: Writable, b: Buffer): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (sink.write(b)) return resolve();
    const done = () => (sink.removeListener('error', reject), resolve());
    sink.once('drain', done);
    sink.once('error', reject);
  });
}

/**
 * Downloads the zstd-compressed `url` with curl into `zstd -d` and hands each decompressed chunk to `consume`, which
 * may throw to stop everything. Resolves with the compressed byte count once zstd confirmed the whole stream;
 * `onResume` is told when node takes over a download curl could not finish.
 */
export async function curlDecompressTo(
  url: string,
  tools: { curl: string; zstd: string },
  consume: (chunk: Buffer) => void | Promise<void>,
  signal?: AbortSignal,
  onResume?: (why: string, offset: number) => void,
): Promise<number> {
  const config = curlConfig(url);
  const zstd = spawn(tools.zstd, ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'], signal });
  let zstdErr = '';
  zstd.stderr.on('data', (d: Buffer) => (zstdErr = (zstdErr + d.toString()).slice(-2000)));
  const zstdExit = new Promise<number | null>((r) => zstd.on('close', (code) => r(code)));
  zstd.on('error', () => undefined); // reported through zstdExit and the pipes
  const input = zstd.stdin;
  input.on('error', () => undefined); // EPIPE once zstd gave up: its exit status tells why

  const curl = spawn(tools.curl, curlArgs(), { stdio: ['pipe', input, 'pipe'], signal });
  let curlErr = '';
  curl.stderr.on('data', (d: Buffer) => (curlErr = (curlErr + d.toString()).slice(-4000)));
  curl.stdin.on('error', () => undefined); // curl died before reading its config: reported by its exit
  curl.stdin.end(config);
  let ran = true;
  const curlExit = new Promise<number | null>((resolve) => {
    curl.on('error', () => ((ran = false), resolve(null))); // no curl after all: node downloads it all
    curl.on('close', (code) => resolve(code));
  });

  const state: DrainState = { stop: false };
  const fetched = (async () => {
    const code = await curlExit;
    const out = curlOutcome(curlErr);
    let bytes = out.bytes ?? 0;
    if (code !== 0) {
      signal?.throwIfAborted();
      const why = ran ? `curl failed (${out.message || `exit ${code ?? 'by a signal'}`})` : 'curl did not start';
      // Killed before it said how far it got, or zstd stopped reading (curl's 23: it could not write): no resume.
      if (ran && (out.bytes === undefined || code === 23 || zstd.exitCode !== null))
        throw new TransientError(`downloading the cache entry failed: ${why}`);
      onResume?.(why, bytes);
      for await (const chunk of download(url, signal, bytes)) {
        if (state.stop) break;
        bytes += chunk.length;
        await write(input, chunk);
      }
    }
    input.end();
    return bytes;
  })();
  const drained = drainTo(zstd.stdout, consume, state);
  // Whichever fails first decides; the other is abandoned, never left to reject unhandled.
  fetched.catch(() => undefined);
  drained.catch(() => undefined);
  try {
    const [bytes] = await Promise.all([fetched, drained]);
    const code = await zstdExit;
    if (code !== 0) throw new TransientError(`zstd could not decompress the cache entry: ${zstdErr.trim() || code}`);
    return bytes;
  } catch (e) {
    state.stop = true;
    curl.kill('SIGKILL');
    zstd.kill('SIGKILL');
    input.destroy();
    if (state.consumeError !== undefined || signal?.aborted) throw state.consumeError ?? e;
    const code = await zstdExit;
    // A corrupt stream makes zstd fail and curl then fail to write: zstd's message is the one that explains.
    if (code !== 0 && zstdErr.trim() !== '')
      throw new TransientError(`zstd could not decompress the cache entry: ${zstdErr.trim()}`);
    if (e instanceof TransientError) throw e;
    throw new TransientError(`the cache entry could not be downloaded: ${(e as Error).message}`);
  }
}
