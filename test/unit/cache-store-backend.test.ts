/** Signing-key handling, store URLs and NIX_CONFIG for the store backend, and the fail-open helper. */
import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { failOpen, failureMessage } from '../../src/cache/fail-open.js';
import {
  fileStoreUrl,
  validatePublicKeys,
  validateSecretKey,
  withSecretKeyFile,
  withStoreParams,
} from '../../src/cache/signing.js';
import { restoreFromStore, substituterConfig, validateStoreUrl } from '../../src/cache/store-backend.js';
import { InputError, TransientError } from '../../src/errors.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

/** A Nix-format ed25519 key pair: secret = seed || public key, both base64 after `name:`. */
function nixKeyPair(name: string): { secret: string; pub: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d as string, 'base64url');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  return {
    secret: `${name}:${Buffer.concat([seed, pub]).toString('base64')}`,
    pub: `${name}:${pub.toString('base64')}`,
  };
}

describe('signing keys', () => {
  const { secret, pub } = nixKeyPair('test-1');

  it('hands fn a 0600 file in a private directory and removes both afterwards', async () => {
    const temp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-sign-'));
    try {
      let seen = '';
      await withSecretKeyFile(secret, temp, async (file) => {
        seen = file;
        expect(fs.readFileSync(file, 'utf8')).toBe(secret);
        expect(fs.statSync(file).mode & 0o777).toBe(0o600);
        expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
      });
      expect(fs.existsSync(seen)).toBe(false);
      expect(fs.readdirSync(temp)).toEqual([]);
      // Also when fn throws.
      await expect(
        withSecretKeyFile(secret, temp, async () => {
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(fs.readdirSync(temp)).toEqual([]);
    } finally {
      fs.rmSync(temp, { recursive: true, force: true });
    }
  });

  it('validates keys without ever quoting a secret one', () => {
    expect(() => validateSecretKey(secret)).not.toThrow();
    expect(() => validatePublicKeys([pub])).not.toThrow();
    const wrong = `${secret.slice(0, -8)}AAAA`;
    let message = '';
    try {
      validateSecretKey(wrong);
    } catch (e) {
      expect(e).toBeInstanceOf(InputError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/signing-key/);
    expect(message).not.toContain(wrong.split(':')[1]);
    // A public key is not a secret key and vice versa.
    expect(() => validateSecretKey(pub)).toThrow(InputError);
    expect(() => validatePublicKeys([secret])).toThrow(InputError);
  });

  it('adds store parameters and refuses values Nix would misparse', () => {
    expect(withStoreParams('file:///c', { compression: 'zstd' })).toBe('file:///c?compression=zstd');
    expect(withStoreParams('s3://b?region=x', { 'secret-key': '/k' })).toBe('s3://b?region=x&secret-key=/k');
    expect(() => withStoreParams('file:///c', { 'secret-key': '/a b' })).toThrow();
    expect(fileStoreUrl('/tmp/c')).toBe('file:///tmp/c');
    expect(() => fileStoreUrl('relative')).toThrow();
    expect(() => fileStoreUrl('/tmp/a?b')).toThrow();
  });
});

describe('store backend configuration', () => {
  const { pub } = nixKeyPair('store-1');

  it('accepts store URLs Nix knows and refuses the rest with the input named', () => {
    for (const url of [
      'file:///srv/c',
      'http://127.0.0.1:8080',
      'https://c.example',
      's3://b?region=x',
      'ssh-ng://h',
    ]) {
      expect(() => validateStoreUrl(url)).not.toThrow();
    }
    expect(() => validateStoreUrl('ftp://x')).toThrow(/store-url/);
    expect(() => validateStoreUrl('/srv/cache')).toThrow(InputError);
    expect(() => validateStoreUrl('http://x/#frag')).toThrow(/'#'/);
    expect(() => validateStoreUrl('https://user:hunter2@c.example')).toThrow(/netrc/);
  });

  it('appends the substituter and its keys to an existing NIX_CONFIG', () => {
    expect(substituterConfig(undefined, { url: 'http://127.0.0.1:1' })).toBe(
      'extra-substituters = http://127.0.0.1:1\n',
    );
    expect(substituterConfig('max-jobs = 2\n', { url: 'file:///c', trustedPublicKeys: [pub] })).toBe(
      `max-jobs = 2\nextra-substituters = file:///c\nextra-trusted-public-keys = ${pub}\n`,
    );
    expect(substituterConfig('', { url: 'file:///c', trustSource: true })).toBe(
      'extra-substituters = file:///c?trusted=1\n',
    );
    // Keys win over trusting the source: signatures are then required.
    expect(substituterConfig('', { url: 'file:///c', trustSource: true, trustedPublicKeys: [pub] })).not.toMatch(
      /trusted=1/,
    );
  });

  it('exports NIX_CONFIG through the platform', () => {
    const p = new RecordingPlatform({}, { NIX_CONFIG: 'sandbox = false' });
    restoreFromStore(p, { url: 'http://127.0.0.1:9', trustedPublicKeys: [pub] });
    expect(p.exported.NIX_CONFIG).toBe(
      `sandbox = false\nextra-substituters = http://127.0.0.1:9\nextra-trusted-public-keys = ${pub}\n`,
    );
  });
});

describe('fail-open', () => {
  const opts = { what: 'Restoring the Nix cache', skipped: 'the job continues without cached paths' };

  it('turns any error into one warning saying what was skipped and what kind of error it was', async () => {
    const p = new RecordingPlatform();
    const res = await failOpen(p, opts, async () => {
      throw new TransientError('HTTP 429 from the cache service');
    });
    expect(res.ok).toBe(false);
    const warnings = p.logs.filter((l) => l.level === 'warning');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.message).toBe(
      'Restoring the Nix cache failed (a temporary network or cache service error; a later run may succeed): ' +
        'HTTP 429 from the cache service. Skipped: the job continues without cached paths.',
    );
    await failOpen(p, opts, async () => {
      throw 'a string';
    });
    expect(p.logs.at(-1)?.message).toMatch(/an unexpected error.*a string/);
    expect(failureMessage('X', 'y', new InputError('bad input'))).toBe(
      'X failed (a configuration problem): bad input. Skipped: y.',
    );
  });

  it('passes values through, and fails instead in strict mode, keeping the error class', async () => {
    const p = new RecordingPlatform();
    expect(await failOpen(p, opts, async () => 42)).toEqual({ ok: true, value: 42 });
    const strict = failOpen(p, { ...opts, strict: true }, async () => {
      throw new TransientError('down');
    });
    await expect(strict).rejects.toBeInstanceOf(TransientError);
    await expect(
      failOpen(p, { ...opts, strict: true }, async () => {
        throw new Error('bug');
      }),
    ).rejects.toThrow(/Restoring the Nix cache failed \(an unexpected error\): bug/);
    expect(p.logs.filter((l) => l.level === 'warning')).toEqual([]);
  });

  it('stops waiting after the timeout', async () => {
    const p = new RecordingPlatform();
    const started = Date.now();
    const res = await failOpen(p, { ...opts, timeoutMs: 100 }, () => new Promise(() => undefined));
    expect(res.ok).toBe(false);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(p.logs.at(-1)?.message).toMatch(/temporary.*timed out after 0 s/);
  });
});
