/**
 * The src/nix library against real Nix binaries, each with its own throwaway store (`--store DIR`; the host /nix is
 * never touched, and Nix 2.34 upgrades the store schema, so no store is shared between versions).
 * Debian's Nix 2.8 at /usr/bin/nix and the relocated Nix 2.34.8 that test/setup/nix-fixtures.sh makes both run
 * (FLAKE_CI_NIX234 may name another current Nix: a directory holding `nix`, or the binary). The same assertions run
 * for each; a missing fixture fails loudly.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { outPaths, parseBuildOutputs, parsePrintOutPaths } from '../../src/nix/build-outputs.js';
import { NixCommand } from '../../src/nix/command.js';
import { BuildLogTracker } from '../../src/nix/log-tracker.js';
import { parsePathInfo } from '../../src/nix/path-info.js';
import { atLeast, formatVersion } from '../../src/nix/version.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN, removeScratch } from '../support/fixtures.js';

interface Binary {
  name: string;
  bin: string;
  /** The version the binary must report. */
  check: (nix: NixCommand) => void;
}

function nix234(): Binary[] {
  const given = process.env.FLAKE_CI_NIX234 || NIX234_BIN;
  if (!fs.existsSync(given)) throw new Error(`${given} is missing: run 'bash test/setup/nix-fixtures.sh'.`);
  const isDir = fs.existsSync(given) && fs.statSync(given).isDirectory();
  if (!isDir && path.basename(given) !== 'nix') {
    throw new Error(`FLAKE_CI_NIX234 must name a directory holding 'nix' or the 'nix' binary itself, got ${given}.`);
  }
  const bin = isDir ? given : path.dirname(given);
  return [
    {
      name: `current Nix (${given})`,
      bin,
      check: (nix) => expect(atLeast(nix.version, '2.34')).toBe(true),
    },
  ];
}

const BINARIES: Binary[] = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin', check: (nix) => expect(formatVersion(nix.version)).toMatch(/^2\.8\./) },
  ...nix234(),
];

const EXPR =
  'derivation { name = "x"; system = builtins.currentSystem; builder = "/bin/sh"; ' +
  'args = [ "-c" "echo hi; echo hi > $out" ]; }';

describe.each(BINARIES)('src/nix with $name', ({ bin, check }) => {
  let tmp: string;
  let store: string;
  let nix: NixCommand;
  let platform: RecordingPlatform;
  let built: { drvPath: string; out: string };

  // Offline, no sandbox; a store outside /nix/store is built in a chroot, so the builder needs /bin/sh mapped in.
  const opts = () => [
    '--store',
    store,
    '--option',
    'substituters',
    '',
    '--option',
    'sandbox',
    'false',
    '--option',
    'sandbox-paths',
    '/bin /usr /lib /lib64',
    '--option',
    'build-users-group',
    '',
  ];

  beforeAll(async () => {
    if (!fs.existsSync(path.join(bin, 'nix'))) {
      throw new Error(`No nix in ${bin}: run 'apt-get install nix-bin' (or fix FLAKE_CI_NIX234).`);
    }
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-nixlib-'));
    store = path.join(tmp, 'store');
    for (const d of ['conf', 'home', 'cache']) fs.mkdirSync(path.join(tmp, d));
    // Keep the host's nix.conf, user config and caches out of the test.
    const env = {
      NIX_CONF_DIR: path.join(tmp, 'conf'),
      HOME: path.join(tmp, 'home'),
      XDG_CONFIG_HOME: path.join(tmp, 'home'),
      XDG_CACHE_HOME: path.join(tmp, 'cache'),
    };
    platform = new RecordingPlatform();
    nix = await NixCommand.detect(platform, bin, env);
  });

  afterAll(() => removeScratch(tmp));

  it('detects the version and its features', () => {
    check(nix);
    const modern = atLeast(nix.version, '2.19');
    expect(nix.features.pathInfoJsonIsObject).toBe(modern);
    expect(nix.features.printOutPaths).toBe(atLeast(nix.version, '2.9'));
  });

  it('builds with --json and parses the result and the internal-json log', async () => {
    // No -L: internal-json carries the build log anyway, and -L after --log-format switches 2.8 back to plain text.
    const res = await nix.run([
      'build',
      ...opts(),
      '--impure',
      '--no-link',
      '--json',
      '--log-format',
      'internal-json',
      '--expr',
      EXPR,
    ]);
    const outputs = parseBuildOutputs(res.stdout);
    expect(outputs).toHaveLength(1);
    const drvPath = outputs[0]?.drvPath ?? '';
    const out = outputs[0]?.outputs.out ?? '';
    expect(drvPath).toMatch(/^\/nix\/store\/[a-z0-9]{32}-x\.drv$/);
    expect(out).toMatch(/^\/nix\/store\/[a-z0-9]{32}-x$/);
    built = { drvPath, out };
    expect(fs.readFileSync(path.join(store, out), 'utf8')).toBe('hi\n');

    const tracker = new BuildLogTracker();
    for (const line of res.stderr.split('\n')) tracker.consumeLine(line);
    expect(tracker.started()).toEqual([drvPath]);
    expect(tracker.stopped()).toEqual([drvPath]);
    expect(tracker.drv(drvPath)?.lines).toContain('hi');
    expect(tracker.errors()).toEqual([]);
  });

  it('prints the built paths the way buildOutputArgs says', async () => {
    const res = await nix.run(['build', ...opts(), '--impure', '--no-link', ...nix.buildOutputArgs(), '--expr', EXPR]);
    const paths = nix.features.printOutPaths ? parsePrintOutPaths(res.stdout) : outPaths(parseBuildOutputs(res.stdout));
    expect(paths).toEqual([built.out]);
  });

  it('parses nix path-info --json without a deprecation warning', async () => {
    const res = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), ...opts(), built.out]);
    expect(res.stderr).not.toMatch(/deprecated/);
    const trimmed = res.stdout.trim();
    expect(trimmed.startsWith(nix.features.pathInfoJsonIsObject ? '{' : '[')).toBe(true);
    const [info, ...rest] = parsePathInfo(res.stdout);
    expect(rest).toEqual([]);
    expect(info).toMatchObject({ path: built.out, valid: true, deriver: built.drvPath, references: [] });
    expect(info?.narHash).toMatch(/^sha256-[A-Za-z0-9+/]{43}=$/);
    expect(info?.narSize).toBeGreaterThan(0);
  });

  it('parses the content address of an added file and the derivation itself', async () => {
    const file = path.join(tmp, 'f.txt');
    fs.writeFileSync(file, 'hello\n');
    const added = (await nix.run(['store', 'add-file', ...opts(), file])).stdout.trim();
    expect(added).toMatch(/^\/nix\/store\/[a-z0-9]{32}-f\.txt$/);
    const res = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), ...opts(), added]);
    expect(parsePathInfo(res.stdout)[0]?.ca).toMatch(/^fixed:/);
    const drv = await nix.run(['path-info', '--derivation', ...nix.pathInfoJsonArgs(), ...opts(), built.drvPath]);
    expect(parsePathInfo(drv.stdout)[0]).toMatchObject({ path: built.drvPath, valid: true });
    expect(parsePathInfo(drv.stdout)[0]?.ca).toMatch(/^text:/);
  });

  it('reports a missing path as invalid or as an error naming it', async () => {
    const missing = '/nix/store/00000000000000000000000000000000-missing';
    const res = await nix.run(['path-info', ...nix.pathInfoJsonArgs(), ...opts(), missing], { allowFailure: true });
    if (res.exitCode === 0) expect(parsePathInfo(res.stdout)).toMatchObject([{ path: missing, valid: false }]);
    else expect(res.stderr).toContain(missing);
  });

  it('runs the other programs of the installation', async () => {
    // A single-binary build (like the patched 2.34 one) may ship only `nix`.
    if (!fs.existsSync(nix.program('nix-store'))) return;
    const res = await nix.runStore(['--version']);
    expect(res.stdout).toMatch(/^nix-store \(.*\) \d+\.\d+/);
  });
});
