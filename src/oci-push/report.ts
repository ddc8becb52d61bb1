/**
 * What a push did, for people (the job summary) and for later jobs (the `refs` and `metadata` outputs). Pure
 * functions over a PushReport that the push assembles as it goes; nothing here does I/O.
 *
 * Layers are reported per repository because the same layer can be uploaded to one repository and mounted into the
 * next; per platform because index mode pushes several images.
 */
import type { Digest, LayerReport, Platform as OciPlatform } from '../oci/types.js';
import type { PushMode } from './inputs.js';
import { formatPlatform } from './references.js';

export type BlobAction = LayerReport['action'];

export interface ImageReport {
  platform: OciPlatform;
  /** The image manifest's digest and media type. */
  digest: Digest;
  mediaType: string;
  config: { digest: Digest; size: number; action: BlobAction };
  /** In manifest order. */
  layers: LayerReport[];
}

export interface RepositoryReport {
  registry: string;
  repository: string;
  /** Tags set in this repository; empty when it was pushed by digest only. */
  tags: string[];
  images: ImageReport[];
}

export interface PushReport {
  mode: PushMode;
  /** What the refs point at: the manifest (push mode) or the index (index mode). */
  digest: Digest;
  mediaType: string;
  repositories: RepositoryReport[];
  /** Wall-clock seconds for the whole push (layers upload in parallel, so their seconds overlap). */
  seconds: number;
}

export interface Totals {
  layers: number;
  uploaded: number;
  mounted: number;
  skipped: number;
  /** Bytes sent for uploaded layers. */
  bytes: number;
  /** Compressed size of all layers. */
  size: number;
}

export function totals(layers: LayerReport[]): Totals {
  const t: Totals = { layers: layers.length, uploaded: 0, mounted: 0, skipped: 0, bytes: 0, size: 0 };
  for (const l of layers) {
    t[l.action]++;
    t.bytes += l.bytes;
    t.size += l.size;
  }
  return t;
}

/** `registry/repository:tag@digest` per tag, or `registry/repository@digest` when pushed by digest only. */
export function pushedRefs(report: PushReport): string[] {
  return report.repositories.flatMap((r) => {
    const name = `${r.registry}/${r.repository}`;
    return r.tags.length === 0 ? [`${name}@${report.digest}`] : r.tags.map((tag) => `${name}:${tag}@${report.digest}`);
  });
}

const round = (s: number) => Math.round(s * 1000) / 1000;

/** The `metadata` output: the report with refs and per-image totals, seconds rounded to milliseconds. */
export function renderMetadata(report: PushReport): string {
  return JSON.stringify({
    mode: report.mode,
    digest: report.digest,
    mediaType: report.mediaType,
    refs: pushedRefs(report),
    seconds: round(report.seconds),
    repositories: report.repositories.map((r) => ({
      registry: r.registry,
      repository: r.repository,
      tags: r.tags,
      images: r.images.map((i) => ({
        platform: formatPlatform(i.platform),
        digest: i.digest,
        mediaType: i.mediaType,
        config: i.config,
        totals: totals(i.layers),
        layers: i.layers.map((l) => ({ ...l, seconds: round(l.seconds) })),
      })),
    })),
  });
}

/** 1536 -> `1.5 KiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

const shortPlain = (d: Digest) => d.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]+$/, '$1');
const short = (d: Digest) => `\`${shortPlain(d)}\``;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\s+/g, ' ');

function summaryLine(t: Totals): string {
  const parts = [`${t.layers} layers (${formatBytes(t.size)})`];
  if (t.uploaded) parts.push(`${t.uploaded} uploaded (${formatBytes(t.bytes)} sent)`);
  if (t.mounted) parts.push(`${t.mounted} mounted`);
  if (t.skipped) parts.push(`${t.skipped} already there`);
  return parts.join(', ');
}

function layerTable(image: ImageReport): string {
  const rows = image.layers.map(
    (l, i) =>
      `| ${i + 1} | ${short(l.digest)} | ${short(l.diffId)} | ${formatBytes(l.size)} | ${l.action} | ${formatBytes(l.bytes)} | ${l.seconds.toFixed(1)} |`,
  );
  return [
    '| # | Layer | diff_id | Size | Action | Sent | Seconds |',
    '| ---: | --- | --- | ---: | --- | ---: | ---: |',
    ...rows,
    `| | config ${short(image.config.digest)} | | ${formatBytes(image.config.size)} | ${image.config.action} | | |`,
  ].join('\n');
}

/** Job summaries are at most 1 MiB per step on GitHub; stay far below so other steps keep room. */
export const SUMMARY_MAX_BYTES = 64 * 1024;

/**
 * The job summary: the refs, then per repository and platform a collapsed per-layer table. Past `maxBytes`, layer
 * tables are left out (their totals stay) with a pointer to the `metadata` output, which always has everything.
 */
export function renderSummary(report: PushReport, maxBytes = SUMMARY_MAX_BYTES): string {
  const what = report.mode === 'index' ? 'image index' : 'image';
  const head = [
    `### oci-push: ${what} ${short(report.digest)}`,
    '',
    '| Reference | Digest |',
    '| --- | --- |',
    ...pushedRefs(report).map((r) => {
      const at = r.lastIndexOf('@');
      return `| \`${cell(r.slice(0, at))}\` | \`${r.slice(at + 1)}\` |`;
    }),
    '',
    `Pushed in ${report.seconds.toFixed(1)} s.`,
    '',
  ].join('\n');
  const closing = '\n_Some layer tables were left out to keep this summary small; the `metadata` output has them._\n';
  const entries = report.repositories.flatMap((repo) =>
    repo.images.map((image) => {
      // Plain text: GitHub does not render Markdown inside <summary>.
      const title = `${repo.registry}/${repo.repository} · ${formatPlatform(image.platform)} · ${shortPlain(image.digest)}`;
      const line = `${cell(title)}: ${summaryLine(totals(image.layers))}`;
      const brief = `- ${line}\n`;
      return { brief, full: `<details><summary>${line}</summary>\n\n${layerTable(image)}\n\n</details>\n\n` };
    }),
  );
  // A table goes in only if the one-line totals of every image after it still fit: all totals before any detail.
  const after: number[] = [];
  for (let i = entries.length - 1, sum = 0; i >= 0; i--) after[i] = sum += Buffer.byteLength(entries[i]?.brief ?? '');
  const budget = maxBytes - Buffer.byteLength(closing);
  let out = head;
  let capped = false;
  for (const [i, e] of entries.entries()) {
    const rest = (after[i + 1] ?? 0) + Buffer.byteLength(out);
    if (!capped && rest + Buffer.byteLength(e.full) <= budget) out += e.full;
    else if (rest + Buffer.byteLength(e.brief) <= budget) {
      capped = true;
      out += e.brief;
    } else {
      capped = true;
      break;
    }
  }
  return capped ? out + closing : out;
}
