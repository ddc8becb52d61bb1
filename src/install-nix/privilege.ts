/**
 * Root or passwordless sudo, detected once. System changes (/nix, /etc/nix, users, udev) go through here so a
 * missing privilege is one clear error instead of a permission-denied halfway through.
 */
import { run, type RunOptions, type RunResult } from '../exec.js';
import { InputError } from '../errors.js';
import type { Platform } from '../platform/types.js';

export class Privilege {
  private constructor(
    readonly isRoot: boolean,
    readonly hasSudo: boolean,
    readonly uid: number,
    readonly gid: number,
  ) {}

  /** For tests and callers that already know. */
  static of(isRoot: boolean, hasSudo: boolean): Privilege {
    return new Privilege(isRoot, hasSudo, isRoot ? 0 : 1000, isRoot ? 0 : 1000);
  }

  static async detect(p: Platform): Promise<Privilege> {
    const uid = process.getuid?.() ?? -1;
    const gid = process.getgid?.() ?? -1;
    if (uid === 0) return new Privilege(true, false, uid, gid);
    const sudo = await run(p, 'sudo', ['-n', 'true'], { allowFailure: true }).catch(() => undefined);
    return new Privilege(false, sudo?.exitCode === 0, uid, gid);
  }

  get canWriteSystem(): boolean {
    return this.isRoot || this.hasSudo;
  }

  /** The argv prefix that runs a command with root rights. */
  get prefix(): string[] {
    return this.isRoot ? [] : ['sudo', '-n'];
  }

  require(why: string): void {
    if (!this.canWriteSystem)
      throw new InputError(
        `${why} needs root or passwordless sudo, and this job has neither. Run as root or allow 'sudo -n'.`,
      );
  }

  /** Runs file with root rights (directly when root). */
  async run(
    p: Platform,
    why: string,
    file: string,
    args: readonly string[],
    opts: RunOptions = {},
  ): Promise<RunResult> {
    this.require(why);
    const [cmd, ...rest] = [...this.prefix, file, ...args];
    return run(p, cmd as string, rest, opts);
  }

  /** Writes a file with root rights and the given mode (content via stdin, never argv). */
  async writeFile(p: Platform, why: string, file: string, content: string, mode: number): Promise<void> {
    await this.run(p, why, 'install', ['-D', '-m', mode.toString(8), '/dev/stdin', file], { input: content });
  }
}
