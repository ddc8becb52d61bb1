/**
 * skip-cached and the flake's own nixConfig: a package whose output sits only in a file:// binary cache that the
 * flake names in `nixConfig.extra-substituters` (and that Nix's own `substituters` do not list) counts as cached
 * exactly when Nix accepts flake configuration, as the build itself would then substitute it. Real Nix 2.8 and 2.34,
 * each with throwaway chroot stores.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runBuild } from '../../src/build/engine.js';
import { NixCommand } from '../../src/nix/command.js';
import { RecordingPlatform } from '../../src/platform/recording.js';
import { NIX234_BIN } from '../support/fixtures.js';

const SYSTEM = 'x86_64-linux';
const BINARIES = [
  { name: 'Debian Nix 2.8', bin: '/usr/bin' },
  { name: 'Nix 2.34', bin: process.env.FLAKE_CI_NIX234 || NIX234_BIN },
];

function flakeText(cacheUrl: string): string {
  return `{
  nixConfig.extra-substituters = [ "${cacheUrl}" ];
  outputs = { self }: {
    packages.${SYSTEM}.pkg = derivation {
      name = "flake-config-pkg"; system = "${SYSTEM}"; builder = "/bin/sh";
      args = [ "-c" "echo cached > $out" ]; PATH = "/usr/bin:/bin";
    };
  };
}
`;
}

function conf(store: string, accept: boolean): string {
  return [
    `store = ${store}`,
    'substituters =',
    'require-sigs = false',
    'sandbox = false',
    // A store outside /nix/store builds in a chroot: map in the shell and its tools.
    'sandbox-paths = /bin /usr /lib /lib64',
    'build-users-group =',
    'experimental-features = nix-command flakes',
    `accept-flake-config = ${accept}`,
  ].join('\n');
}

describe.each(BINARIES)('skip-cached with the flake nixConfig, $name', ({ bin }) => {
  let tmp: string;
  let flake: string;
  let cacheUrl: string;
  const env = () => ({ HOME: path.join(tmp, 'home'), NIX_CONF_DIR: path.join(tmp, 'conf') });

  beforeAll(async () => {
    if (!fs.existsSync(path.join(bin, 'nix')))
      throw new Error(`No nix in ${bin}: run 'bash test/setup/nix-fixtures.sh'.`);
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flake-ci-flake-config-'));
    flake = path.join(tmp, 'flake');
    for (const d of [flake, 'home', 'conf']) fs.mkdirSync(path.resolve(tmp, d), { recursive: true });
    cacheUrl = `file://${path.join(tmp, 'binary-cache')}`;
    fs.writeFileSync(path.join(flake, 'flake.nix'), flakeText(cacheUrl));
    // Fill the cache from a scratch store, so the test stores have never seen the package.
    const scratch = await NixCommand.detect(undefined, bin, {
      ...env(),
      NIX_CONFIG: conf(path.join(tmp, 'scratch-store'), false),
    });
    const installable = `${flake}#packages.${SYSTEM}.pkg`;
    const out = (await scratch.run(['eval', '--raw', `${installable}.outPath`])).stdout.trim();
    await scratch.run(['build', '--no-link', installable]);
    await scratch.run(['copy', '--to', cacheUrl, out]);
  });

  afterAll(() => {
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  const run = async (accept: boolean, store: string) => {
    const nix = await NixCommand.detect(new RecordingPlatform(), bin, {
      ...env(),
      NIX_CONFIG: conf(path.join(tmp, store), accept),
    });
    return runBuild(new RecordingPlatform(), nix, {
      flake: '.',
      cwd: flake,
      mode: 'packages',
      skipCached: true,
    });
  };

  it('reports the package cached at the flake substituter when flake configuration is accepted', async () => {
    const { results } = await run(true, 'store-accept');
    expect(results.map((r) => [r.attr, r.status, r.cachedAt])).toEqual([
      [`packages.${SYSTEM}.pkg`, 'cached', cacheUrl],
    ]);
  });

  it('builds it when flake configuration is not accepted', async () => {
    const { results } = await run(false, 'store-refuse');
    expect(results.map((r) => [r.attr, r.status])).toEqual([[`packages.${SYSTEM}.pkg`, 'built']]);
  });
});
