/**
 * What the build action says about results on the platform itself (not the Checks API): an annotation per evaluation
 * error at the file and line Nix named, one per failed build at its attribute in flake.nix (on GitLab both become the
 * Code Quality report, which needs a file), the message the step fails with, and the VM artifact list.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Platform } from '../platform/types.js';
import { attributeLine, locationFile, type LocalFlake } from './action-context.js';
import type { AttrResult, BuildStatus, Counts } from './results.js';
import type { VmArtifact } from './vm.js';

/** GitHub shows 10 error annotations per step, GitLab's widget a page: past this, one line says how many more. */
export const MAX_ANNOTATIONS = 50;
const MAX_MESSAGE = 4000;
const FAILED: ReadonlySet<BuildStatus> = new Set(['failed', 'dependency-failed', 'infra-failure']);

const TITLES: Partial<Record<BuildStatus, string>> = {
  'eval-error': 'evaluation error',
  failed: 'build failed',
  'dependency-failed': 'dependency failed',
  'infra-failure': 'infrastructure failure',
};

function clip(text: string): string {
  return text.length <= MAX_MESSAGE ? text : `${text.slice(0, MAX_MESSAGE)}\n…`;
}

function failureMessage(r: AttrResult): string {
  const lines = [r.error ?? r.status];
  if (r.failedDependency) lines.push(`failed dependency: ${r.failedDependency}`);
  const tail = (r.logTail ?? []).slice(-10);
  if (tail.length > 0) lines.push('', ...tail);
  return lines.join('\n');
}

export function annotateResults(
  p: Platform,
  results: readonly AttrResult[],
  flake: LocalFlake | undefined,
  workspace: string,
): void {
  const flakeNix = flake ? path.join(flake.dir, 'flake.nix') : undefined;
  const flakeNixText = flakeNix && existsSync(flakeNix) ? readFileSync(flakeNix, 'utf8') : undefined;
  const flakeNixRel = flakeNixText !== undefined ? path.relative(workspace, flakeNix as string) : undefined;
  const bad = results.filter((r) => r.status === 'eval-error' || FAILED.has(r.status));
  for (const r of bad.slice(0, MAX_ANNOTATIONS)) {
    const title = `${TITLES[r.status] ?? r.status}: ${r.attr}`;
    if (r.status === 'eval-error') {
      const file = locationFile(flake, workspace, r.errorLocation) ?? flakeNixRel;
      const startLine = r.errorLocation?.relativeFile
        ? r.errorLocation.line
        : flakeNixText !== undefined
          ? attributeLine(flakeNixText, r.attrPath)
          : undefined;
      const startColumn = r.errorLocation?.relativeFile ? r.errorLocation.column : undefined;
      p.log('error', clip(r.error ?? 'evaluation failed'), file ? { title, file, startLine, startColumn } : { title });
    } else {
      const where =
        flakeNixRel !== undefined && flakeNixText !== undefined
          ? { file: flakeNixRel, startLine: attributeLine(flakeNixText, r.attrPath) }
          : {};
      p.log('error', clip(failureMessage(r)), { title, ...where });
    }
  }
  if (bad.length > MAX_ANNOTATIONS)
    p.log('error', `${bad.length - MAX_ANNOTATIONS} more attribute(s) failed; see the job summary and results files.`);
}

/** The message the step fails with, naming the counts and the first attributes; undefined when all passed. */
export function failureSummary(results: readonly AttrResult[], counts: Counts): string | undefined {
  if (counts.failed === 0 && counts.evalErrors === 0) return undefined;
  const parts: string[] = [];
  if (counts.failed > 0) parts.push(`${counts.failed} failed to build`);
  if (counts.evalErrors > 0) parts.push(`${counts.evalErrors} failed to evaluate`);
  const bad = results.filter((r) => r.status === 'eval-error' || FAILED.has(r.status));
  const named = bad.slice(0, 10).map((r) => (r.status === 'failed' ? r.attr : `${r.attr} (${TITLES[r.status]})`));
  const more = bad.length > named.length ? `, and ${bad.length - named.length} more` : '';
  return `${parts.join(' and ')} of ${counts.total} attribute(s): ${named.join(', ')}${more}.`;
}

/** A short Markdown list of what failed VM tests left behind (the summary itself is the report module's). */
export function artifactsMarkdown(artifacts: readonly VmArtifact[], dir: string): string {
  if (artifacts.length === 0) return '';
  const lines = ['', '#### VM test artifacts', ''];
  for (const a of artifacts) {
    const files = a.files.map((f) => `\`${path.relative(dir, f)}\``).join(', ');
    lines.push(`- \`${a.attr}\`: ${files || 'no files'}`);
  }
  lines.push('', `Kept in \`${dir}\` (output \`artifacts\`); upload it with actions/upload-artifact to keep it.`);
  return `${lines.join('\n')}\n`;
}
