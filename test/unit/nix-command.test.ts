import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CommandError } from '../../src/exec.js';
import { NixCommand } from '../../src/nix/command.js';
import { parseNixVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';

// Fake nix/nix-store scripts that print their argv one per line: real spawning, no module mocks.
let bin: string;

beforeAll(() => {
  bin = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-nixcmd-'));
  const script = (version: string) =>
    [
      '#!/bin/sh',
      `if [ "$1" = "--version" ]; then echo "${version}"; exit 0; fi`,
      'if [ "$1" = "--fail" ] || [ "$3" = "--fail" ]; then echo "error: boom" >&2; exit 1; fi',
      'for a in "$@"; do printf "%s\\n" "$a"; done',
      'printf "ENV=%s\\n" "$FLAKE_CI_TEST_VAR"',
      'printf "PATHSET=%s\\n" "${PATH:+yes}"',
    ].join('\n');
  fs.writeFileSync(path.join(bin, 'nix'), script('nix (Nix) 2.34.8'), { mode: 0o755 });
  fs.writeFileSync(path.join(bin, 'nix-store'), script('nix-store (Nix) 2.34.8'), { mode: 0o755 });
});

afterAll(() => fs.rmSync(bin, { recursive: true, force: true }));

const v28 = parseNixVersion('nix (Nix) 2.8.0');
const v234 = parseNixVersion('nix (Nix) 2.34.8');

describe('NixCommand argument arrays', () => {
  it('puts the experimental features first as two argv entries', () => {
    const nix = new NixCommand({ bin: '/opt/nix/bin', version: v28 });
    expect(nix.program('nix')).toBe('/opt/nix/bin/nix');
    expect(nix.nixArgs(['run', '.#app', '--', '--flag', "it's"])).toEqual([
      '--extra-experimental-features',
      'nix-command flakes',
      'run',
      '.#app',
      '--',
      '--flag',
      "it's",
    ]);
  });

  it('chooses path-info and build flags by version', () => {
    const old = new NixCommand({ bin: '/b', version: v28 });
    const cur = new NixCommand({ bin: '/b', version: v234 });
    expect(old.pathInfoJsonArgs()).toEqual(['--json']);
    expect(cur.pathInfoJsonArgs()).toEqual(['--json', '--json-format', '1']);
    expect(old.buildOutputArgs()).toEqual(['--json']);
    expect(cur.buildOutputArgs()).toEqual(['--print-out-paths']);
  });
});

describe('NixCommand spawning', () => {
  it('detects the version from <bin>/nix --version', async () => {
    const p = new RecordingPlatform();
    const nix = await NixCommand.detect(p, bin);
    expect(nix.version.minor).toBe(34);
    expect(nix.features.jsonFormatFlag).toBe(true);
    expect(p.logs.some((l) => l.level === 'debug' && l.message.includes('--version'))).toBe(true);
  });

  it('passes arguments verbatim, never through a shell', async () => {
    const nix = new NixCommand({ bin, version: v234 });
    const tricky = ['path-info', '$(touch /tmp/pwned)', 'a b', '"q"', ';ls'];
    const res = await nix.run(tricky);
    const lines = res.stdout.split('\n');
    expect(lines.slice(0, 7)).toEqual(['--extra-experimental-features', 'nix-command flakes', ...tricky]);
    const store = await nix.runStore(['--load-db']);
    expect(store.stdout.split('\n')[0]).toBe('--load-db');
  });

  it('adds env to the inherited environment', async () => {
    const nix = new NixCommand({ bin, version: v234, env: { FLAKE_CI_TEST_VAR: 'from-ctor' } });
    const res = await nix.run(['x']);
    expect(res.stdout).toContain('ENV=from-ctor');
    expect(res.stdout).toContain('PATHSET=yes');
    const override = await nix.run(['x'], { env: { FLAKE_CI_TEST_VAR: 'per-call' } });
    expect(override.stdout).toContain('ENV=per-call');
  });

  it('throws CommandError with stderr on failure unless allowed', async () => {
    const nix = new NixCommand({ bin, version: v234 });
    await expect(nix.run(['--fail'])).rejects.toThrow(CommandError);
    await expect(nix.run(['--fail'])).rejects.toThrow(/error: boom/);
    const res = await nix.run(['--fail'], { allowFailure: true });
    expect(res.exitCode).toBe(1);
  });

  it('fails detection loudly for a directory without nix', async () => {
    await expect(NixCommand.detect(undefined, path.join(bin, 'missing'))).rejects.toThrow();
  });
});
