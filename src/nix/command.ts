/**
 * Running the Nix binaries of one installation. Argument arrays only: store paths, flake references and settings come
 * from users and must never pass through a shell.
 */
import * as path from 'node:path';
import { findOnPath, run, type RunOptions, type RunResult } from '../exec.js';
import type { Platform } from '../platform/types.js';
import { nixFeatures, parseNixVersion, PATH_INFO_JSON_FORMAT, type NixFeatures, type NixVersion } from './version.js';

export interface NixCommandOptions {
  /** Directory holding nix, nix-store, nix-build, ... */
  bin: string;
  version: NixVersion;
  platform?: Platform;
  /** Variables added to the inherited environment of every command. */
  env?: Record<string, string>;
}

/** The experimental features every `nix` call enables; older Nix versions refuse the new CLI without them. */
/** The directory of the first `nix` on the job's PATH (install-nix put it there; nix-store & co. sit beside it). */
export function nixBinOnPath(p: Platform): string | undefined {
  const nix = findOnPath('nix', p.env('PATH'));
  return nix === undefined ? undefined : path.dirname(nix);
}

export const EXPERIMENTAL_FEATURES = 'nix-command flakes';

export class NixCommand {
  readonly bin: string;
  readonly version: NixVersion;
  readonly features: NixFeatures;
  readonly platform: Platform | undefined;
  readonly env: Record<string, string>;

  constructor(opts: NixCommandOptions) {
    this.bin = opts.bin;
    this.version = opts.version;
    this.features = nixFeatures(opts.version);
    this.platform = opts.platform;
    this.env = { ...(opts.env ?? {}) };
  }

  /** Absolute path of one of the installation's programs. */
  program(name: string): string {
    return path.join(this.bin, name);
  }

  /**
   * The argv for `nix`: the features go first, as two entries, so that arguments after a `--` (nix run, nix develop)
   * stay untouched.
   */
  nixArgs(args: readonly string[]): string[] {
    return ['--extra-experimental-features', EXPERIMENTAL_FEATURES, ...args];
  }

  /** `nix path-info --json` plus the format flag where the version wants it, so 2.33+ prints no warning. */
  pathInfoJsonArgs(): string[] {
    return this.features.jsonFormatFlag ? ['--json', '--json-format', PATH_INFO_JSON_FORMAT] : ['--json'];
  }

  /** `nix build` arguments that make it print the built paths on stdout: a plain list where supported, JSON before. */
  buildOutputArgs(): string[] {
    return this.features.printOutPaths ? ['--print-out-paths'] : ['--json'];
  }

  run(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.platform, this.program('nix'), this.nixArgs(args), this.runOptions(opts));
  }

  runStore(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.platform, this.program('nix-store'), args, this.runOptions(opts));
  }

  /** Runs another program of the installation (nix-build, nix-env, nix-daemon, ...). */
  runProgram(name: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return run(this.platform, this.program(name), args, this.runOptions(opts));
  }

  /** Runs `<binDir>/nix --version` and builds a command for that installation. */
  static async detect(
    platform: Platform | undefined,
    binDir: string,
    env: Record<string, string> = {},
  ): Promise<NixCommand> {
    const res = await run(platform, path.join(binDir, 'nix'), ['--version'], withEnv(env, {}));
    return new NixCommand({ bin: binDir, version: parseNixVersion(res.stdout), platform, env });
  }

  private runOptions(opts: RunOptions): RunOptions {
    return withEnv(this.env, opts);
  }
}

function withEnv(env: Record<string, string>, opts: RunOptions): RunOptions {
  const extra = { ...env, ...(opts.env ?? {}) };
  if (Object.keys(extra).length === 0) return opts;
  // @actions/exec replaces the whole environment when one is given, and nix needs HOME, PATH, NIX_* from the job.
  const inherited: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) inherited[k] = v;
  return { ...opts, env: { ...inherited, ...extra } };
}
