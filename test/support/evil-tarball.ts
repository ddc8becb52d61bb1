/**
 * A release tarball that is real except for one entry that escapes the store: a symlink inside a store path
 * pointing at /etc/passwd. Built with GNU tar from the unpacked real release, so only that entry is wrong.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, symlinkSync, chmodSync } from 'node:fs';
import * as path from 'node:path';

export async function makeEvilTarball(
  real: string,
  scratch: string,
): Promise<{ file: string; sha256: string; entry: string }> {
  const dir = mkdtempSync(path.join(scratch, 'evil-'));
  execFileSync('tar', ['-xJf', real, '-C', dir]);
  const top = readdirSync(dir)[0] as string;
  const store = path.join(dir, top, 'store');
  const victim = readdirSync(store).find((n) => n.includes('-nix-2'))!;
  chmodSync(path.join(store, victim), 0o755);
  symlinkSync('/etc/passwd', path.join(store, victim, 'escape'));
  const file = path.join(scratch, 'evil.tar.xz');
  // Fast xz preset: the test is about the entry, not the compression ratio.
  execFileSync('tar', ['--use-compress-program=xz -0 -T0', '-cf', file, '-C', dir, top]);
  const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
  return { file, sha256, entry: `store/${victim}/escape` };
}
