/**
 * The GitHub matrix: `{"include": [{name, system, features, runs-on, attributes}, ...]}` for
 * `strategy: matrix: ${{ fromJSON(needs.<plan>.outputs.matrix) }}`. `runs-on` is one label as a string or several
 * as a list (both are what `runs-on:` accepts); `attributes` is the shard's exact patterns, space separated, for the
 * shard job's `attributes:` input; `features` (space separated) lets a workflow treat VM-test shards differently.
 */
import { InputError } from '../../errors.js';
import type { Shard } from './pack.js';

/** GitHub's limit on one output value (and on a job's outputs together). */
export const MAX_OUTPUT_BYTES = 1024 * 1024;

export interface MatrixEntry {
  name: string;
  system: string;
  features: string;
  'runs-on': string | string[];
  attributes: string;
}

export function matrixEntry(shard: Shard, patterns: readonly string[]): MatrixEntry {
  const labels = shard.labels.length === 1 ? (shard.labels[0] as string) : [...shard.labels];
  return {
    name: shard.name,
    system: shard.system,
    features: shard.features.join(' '),
    'runs-on': labels,
    attributes: patterns.join(' '),
  };
}

/** The output value; too large an output fails the plan with what to do instead of truncating it. */
export function matrixJson(entries: readonly MatrixEntry[], attributes: number): string {
  const json = JSON.stringify({ include: entries });
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes > MAX_OUTPUT_BYTES) {
    throw new InputError(
      `The matrix for ${attributes} attribute(s) is ${bytes} bytes, over GitHub's ${MAX_OUTPUT_BYTES}-byte limit for an ` +
        `output. Plan fewer attributes per matrix: split them with 'attributes' patterns (e.g. one planning job ` +
        `per system) and give each part its own matrix.`,
    );
  }
  return json;
}
