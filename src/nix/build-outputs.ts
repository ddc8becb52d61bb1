/**
 * What `nix build` reports about the paths it built.
 * `--json` prints an array with one entry per installable: `{drvPath, outputs: {name: path}}` for derivations (plus
 * `startTime`/`stopTime`/`cpuUser`/`cpuSystem` in newer versions when something was built). Opaque store paths were
 * `{path}` in older versions and are a bare string in newer ones. With dynamic derivations `drvPath` itself can be
 * an object `{drvPath, output, outputPath}`. `--print-out-paths` (2.9+) prints one store path per line.
 */
import { parseJson } from './path-info.js';

export interface BuildOutput {
  /** The derivation; undefined when the installable was a store path that needed no build. */
  drvPath?: string;
  /** The store path of an opaque installable. */
  path?: string;
  /** Output name -> store path. Outputs Nix reports without a path are left out. */
  outputs: Record<string, string>;
  /** Unix seconds, when Nix reports them. */
  startTime?: number;
  stopTime?: number;
}

export function parseBuildOutputs(json: string): BuildOutput[] {
  const root = parseJson(json, 'nix build --json');
  if (!Array.isArray(root)) throw new Error('nix build --json: expected an array.');
  return root.map((item, i) => {
    if (typeof item === 'string') return { path: item, outputs: {} };
    if (typeof item !== 'object' || item === null || Array.isArray(item)) {
      throw new Error(`nix build --json: entry ${i} is not an object.`);
    }
    if (typeof item.path === 'string' && item.drvPath === undefined) return { path: item.path, outputs: {} };
    const drvPath = drvPathOf(item.drvPath);
    if (drvPath === undefined) throw new Error(`nix build --json: entry ${i} has neither 'drvPath' nor 'path'.`);
    const outputs: Record<string, string> = {};
    const raw = item.outputs;
    if (raw !== undefined && raw !== null) {
      if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`nix build --json: entry ${i} 'outputs'.`);
      for (const [name, p] of Object.entries(raw)) if (typeof p === 'string' && p !== '') outputs[name] = p;
    }
    const out: BuildOutput = { drvPath, outputs };
    if (typeof item.startTime === 'number' && item.startTime > 0) out.startTime = item.startTime;
    if (typeof item.stopTime === 'number' && item.stopTime > 0) out.stopTime = item.stopTime;
    return out;
  });
}

function drvPathOf(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  // A derivation produced by another derivation: the built .drv is that output's path.
  if (typeof v === 'object' && v !== null && 'outputPath' in v && typeof v.outputPath === 'string') return v.outputPath;
  return undefined;
}

/** Every store path in the result: outputs and opaque paths, in order, without duplicates. */
export function outPaths(outputs: readonly BuildOutput[]): string[] {
  const seen = new Set<string>();
  for (const o of outputs) {
    if (o.path) seen.add(o.path);
    for (const p of Object.values(o.outputs)) seen.add(p);
  }
  return [...seen];
}

/** The stdout of `nix build --print-out-paths`: one absolute store path per line. */
export function parsePrintOutPaths(stdout: string): string[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('/'));
}
