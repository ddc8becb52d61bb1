/** What later steps need to find and use Nix: PATH, certificates, profiles, and the daemon when there is one. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { Platform } from '../platform/types.js';
import { DEFAULT_PROFILE } from './existing.js';

const SYSTEM_CERTS = ['/etc/ssl/certs/ca-certificates.crt', '/etc/pki/tls/certs/ca-bundle.crt', '/etc/ssl/cert.pem'];

export function certFile(p: Platform, profile: string): string | undefined {
  const current = p.env('NIX_SSL_CERT_FILE');
  if (current && existsSync(current)) return undefined; // already set and valid: leave it
  return [...SYSTEM_CERTS, path.join(profile, 'etc/ssl/certs/ca-bundle.crt')].find((f) => existsSync(f));
}

export function exportEnvironment(p: Platform, opts: { binDir: string; multiUser: boolean; profile?: string }): void {
  const profile = opts.profile ?? DEFAULT_PROFILE;
  p.addPath(opts.binDir);
  const cert = certFile(p, profile);
  if (cert) p.exportVariable('NIX_SSL_CERT_FILE', cert);
  const home = p.env('HOME');
  p.exportVariable('NIX_PROFILES', [profile, home ? `${home}/.nix-profile` : ''].filter(Boolean).join(' '));
  // Root talks to the local store directly unless told otherwise; with a daemon, everyone should use it.
  if (opts.multiUser) p.exportVariable('NIX_REMOTE', 'daemon');
  // Builds in single-user mode use the client's TMPDIR: keep them on the runner's temp disk, not a small /tmp.
  if (!opts.multiUser && p.name === 'github' && !p.env('TMPDIR')) p.exportVariable('TMPDIR', p.runner.temp);
}
