/**
 * The `builders-ssh-key` secret: checked (without ever quoting it), normalised, and written to a 0600 file in a
 * fresh 0700 directory under the job's temp directory. It never goes on a command line (argv is world-readable in
 * /proc) nor into state; only the directory's path is saved for the post step.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from '../errors.js';

/** Key directories are named with this prefix, so the post step can find them even without state. */
export const KEY_DIR_PREFIX = 'flake-ci-builders-';

const PEM = /^-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----\n([\s\S]+?)\n-----END \1PRIVATE KEY-----$/;
const WHAT = 'builders-ssh-key';

/**
 * The key as ssh wants it: LF line ends and a final newline (OpenSSH's loader rejects a key whose last line lacks
 * it, and CI secret stores often strip it). Throws InputError for what ssh would reject with a vaguer message.
 */
export function normalizePrivateKey(key: string): string {
  const text = key.replace(/\r\n?/g, '\n').trim();
  if (/^(?:ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/=]+/.test(text))
    throw new InputError(`${WHAT} holds a public key; it needs the private key (the file without .pub).`);
  if (!text.includes('PRIVATE KEY-----'))
    throw new InputError(
      `${WHAT} is not a private key: expected the whole key file, from "-----BEGIN OPENSSH PRIVATE KEY-----" ` +
        `to "-----END OPENSSH PRIVATE KEY-----".`,
    );
  const m = PEM.exec(text);
  if (!m)
    throw new InputError(
      `${WHAT} lost its line breaks or its BEGIN/END lines: store the key file's content unchanged ` +
        '(e.g. `gh secret set NAME < key`), not pasted as one line or with literal "\\n".',
    );
  if (isEncrypted(m[1] ?? '', m[2] ?? ''))
    throw new InputError(
      `${WHAT} is protected by a passphrase, which nothing can type in CI: use a dedicated key without one ` +
        '(`ssh-keygen -t ed25519 -N ""`) and authorize only it on the builder.',
    );
  return `${text}\n`;
}

/** True for OpenSSH keys whose cipher is not "none" and for encrypted PEM/PKCS#8 keys. */
function isEncrypted(label: string, body: string): boolean {
  if (label === 'ENCRYPTED ' || /^Proc-Type: 4,ENCRYPTED$/m.test(body)) return true;
  if (label !== 'OPENSSH ') return false;
  const bin = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  const magic = 'openssh-key-v1\0';
  if (bin.toString('latin1', 0, magic.length) !== magic || bin.length < magic.length + 4) return false;
  const len = bin.readUInt32BE(magic.length);
  return bin.toString('latin1', magic.length + 4, magic.length + 4 + len) !== 'none';
}

/** Strings to register as secrets: the whole key and each body line (GitHub masks line by line in logs). */
export function secretParts(key: string): string[] {
  const lines = key
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length >= 8 && !l.startsWith('-----'));
  return [key.trim(), ...lines];
}

/** A path Nix can carry in a machine spec field: no whitespace, no `;` or `#` (its separators). */
export function specSafePath(p: string): boolean {
  return !/[\s;#]/.test(p);
}

/**
 * Writes the key to `<temp>/flake-ci-builders-XXXXXX/id` (directory 0700, file 0600, created exclusively) and
 * returns both paths.
 */
export function writeKeyFile(temp: string, key: string): { dir: string; file: string } {
  fs.mkdirSync(temp, { recursive: true });
  // mkdtemp creates the directory 0700, so nobody else can even list it.
  const dir = fs.mkdtempSync(path.join(temp, KEY_DIR_PREFIX));
  const file = path.join(dir, 'id');
  try {
    fs.writeFileSync(file, key, { mode: 0o600, flag: 'wx' });
    // The mode above is subject to the umask, which can only remove bits; chmod states the intent regardless.
    fs.chmodSync(file, 0o600);
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { dir, file };
}
