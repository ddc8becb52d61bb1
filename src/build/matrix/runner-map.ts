/**
 * The `runner-map` input: which runner labels (GitHub `runs-on`) or runner tags (GitLab `tags:`) a shard of a given
 * system and required features gets. One entry per line, `key: labels` or `key=labels`:
 *
 *   x86_64-linux: ubuntu-latest
 *   aarch64-linux=ubuntu-24.04-arm
 *   x86_64-linux+kvm: [self-hosted, kvm]
 *   aarch64-darwin=self-hosted,macOS,ARM64
 *
 * or one JSON object (`{"x86_64-linux": "ubuntu-latest", "x86_64-linux+kvm": ["self-hosted", "kvm"]}`). A key is a
 * system, optionally followed by `+feature` for requiredSystemFeatures entries; labels are one label, a
 * comma-separated list, or a `[...]` list (quote a label holding commas or blanks there). `#` starts a comment
 * line. See chooseRunner and mergeRunnerMaps for which entry an attribute gets.
 */
import { parse } from 'yaml';
import { InputError, errorMessage } from '../../errors.js';

export type RunnerMap = ReadonlyMap<string, readonly string[]>;

/** GitHub-hosted runners. ubuntu-latest has KVM usable by Nix (with the udev rule install-nix writes). */
export const GITHUB_DEFAULTS: RunnerMap = new Map([
  ['x86_64-linux', ['ubuntu-latest']],
  ['aarch64-linux', ['ubuntu-24.04-arm']],
  ['aarch64-darwin', ['macos-latest']],
  ['x86_64-darwin', ['macos-13']],
  ['x86_64-linux+kvm', ['ubuntu-latest']],
  ['x86_64-linux+nixos-test', ['ubuntu-latest']],
]);

/** GitLab runners are the instance's own: no tags unless the user maps them. */
export const GITLAB_DEFAULTS: RunnerMap = new Map();

const KEY = /^[A-Za-z0-9_.-]+(\+[A-Za-z0-9_.-]+)*$/;
const EXAMPLE = "e.g. 'x86_64-linux: ubuntu-latest' and 'x86_64-linux+kvm: [self-hosted, kvm]'";

function bad(why: string): InputError {
  return new InputError(
    `Input 'runner-map' ${why}. Write one 'system[+feature...]: label[,label...]' entry per line, ${EXAMPLE}.`,
  );
}

/** Parses the input; '' gives an empty map (the defaults only). */
export function parseRunnerMap(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const add = (rawKey: string, value: unknown, where: string) => {
    const key = normalizeKey(rawKey);
    if (!KEY.test(key)) throw bad(`${where}: ${JSON.stringify(rawKey)} is not a 'system' or 'system+feature' key`);
    if (out.has(key)) throw bad(`${where}: ${JSON.stringify(rawKey)} is given twice`);
    const list = typeof value === 'string' ? value.split(',') : value;
    if (!Array.isArray(list)) throw bad(`${where}: give ${JSON.stringify(rawKey)} a label or a list of labels`);
    const labels = list.map((l) => (typeof l === 'string' || typeof l === 'number' ? String(l).trim() : ''));
    if (labels.length === 0 || labels.some((l) => l === '')) {
      throw bad(`${where}: ${JSON.stringify(rawKey)} has an empty or non-text label (${JSON.stringify(value)})`);
    }
    out.set(key, labels);
  };
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    const doc = parseYaml(trimmed, 'is not a valid JSON object');
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw bad('must map systems to labels');
    for (const [k, v] of Object.entries(doc as Record<string, unknown>)) add(k, v, 'the object');
    return out;
  }
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `line ${i + 1}`;
    const m = /^([^:=]+?)\s*[:=]\s*(.*)$/.exec(line);
    if (!m) throw bad(`${where} (${JSON.stringify(line)}) is not 'key: labels'`);
    const value = (m[2] as string).trim();
    if (value === '') throw bad(`${where}: ${JSON.stringify(m[1])} has no labels`);
    add(m[1] as string, value.startsWith('[') ? parseYaml(value, `${where} has a malformed [...] list`) : value, where);
  });
  return out;
}

function parseYaml(text: string, why: string): unknown {
  try {
    return parse(text);
  } catch (e) {
    throw bad(`${why} (${errorMessage(e).split('\n')[0]})`);
  }
}

/** `x86_64-linux + nixos-test+kvm` -> `x86_64-linux+kvm+nixos-test`: features in a fixed order. */
function normalizeKey(raw: string): string {
  const [system = '', ...features] = raw.split('+').map((s) => s.trim());
  return [system, ...[...new Set(features)].sort()].join('+');
}

export interface RunnerChoice {
  labels: string[];
  /** The map key that matched ('' when none did). */
  key: string;
}

/**
 * The user's entries over the defaults. A user entry for a plain system also drops the defaults' feature entries
 * for that system: `x86_64-linux: [self-hosted]` sends that system's VM tests to self-hosted runners as well, not
 * to the default's ubuntu-latest. The user's entries come first, so they win ties.
 */
export function mergeRunnerMaps(user: RunnerMap, defaults: RunnerMap): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [k, v] of user) out.set(k, [...v]);
  for (const [k, v] of defaults) {
    const system = k.split('+')[0] as string;
    if (!out.has(k) && !(k !== system && user.has(system))) out.set(k, [...v]);
  }
  return out;
}

/**
 * The labels for a system and feature set: the entry with the most features, all of which the attribute requires;
 * ties go to the entry listed first. No matching entry gives no labels.
 */
export function chooseRunner(system: string, features: readonly string[], map: RunnerMap): RunnerChoice {
  const have = new Set(features);
  let found: RunnerChoice = { key: '', labels: [] };
  let score = -1;
  for (const [key, labels] of map) {
    const [sys, ...need] = key.split('+');
    if (sys !== system || !need.every((f) => have.has(f)) || need.length <= score) continue;
    found = { key, labels: [...labels] };
    score = need.length;
  }
  return found;
}
