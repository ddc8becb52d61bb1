// Renders the README's inputs/outputs tables from actions/*/action.yml (DESIGN.md: action.yml is the one place
// inputs and outputs are documented; the README copy is generated so the two cannot disagree). Pure functions; the
// CLI is gen-readme.mjs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';

/** Folds a description to one line and escapes what would break a Markdown table cell. */
export function cell(text) {
  return String(text ?? '')
    .replace(/\s+/g, ' ')
    .trim()
    .replace(/\|/g, '\\|');
}

// Defaults are shown as code so `${{ github.token }}`, '' and 'true' read unambiguously; empty stays empty.
function codeCell(value) {
  const s = value === undefined || value === null ? '' : cell(value);
  return s === '' ? '' : `\`${s}\``;
}

/** Markdown for one action: an inputs table and an outputs table. */
export function renderTables(action) {
  const lines = ['#### Inputs', ''];
  const inputs = Object.entries(action?.inputs ?? {});
  if (inputs.length === 0) lines.push('None.');
  else {
    lines.push('| Name | Description | Default | Required |', '| --- | --- | --- | --- |');
    for (const [name, spec] of inputs) {
      const required = spec?.required === true || spec?.required === 'true' ? 'yes' : 'no';
      lines.push(`| \`${name}\` | ${cell(spec?.description)} | ${codeCell(spec?.default)} | ${required} |`);
    }
  }
  lines.push('', '#### Outputs', '');
  const outputs = Object.entries(action?.outputs ?? {});
  if (outputs.length === 0) lines.push('None.');
  else {
    lines.push('| Name | Description |', '| --- | --- |');
    for (const [name, spec] of outputs) lines.push(`| \`${name}\` | ${cell(spec?.description)} |`);
  }
  return lines.join('\n');
}

/** Every actions/<name>/action.yml under root, parsed, sorted by name. */
export function loadActions(root) {
  const dir = join(root, 'actions');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'action.yml')))
    .map((d) => ({ name: d.name, action: parse(readFileSync(join(dir, d.name, 'action.yml'), 'utf8')) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

const escapeRe = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const MARKER = /<!-- BEGIN GENERATED: ([^ ]+) -->/g;

/**
 * Replaces each `<!-- BEGIN GENERATED: <name> -->` ... `<!-- END GENERATED: <name> -->` region with fresh tables.
 * Returns the new text, the actions whose region changed (`drifted`) and `problems` that generation cannot fix
 * (an action without a region, a region without an action, a region without its END marker).
 */
export function updateReadme(readme, actions) {
  let text = readme;
  const drifted = [];
  const problems = [];
  const names = new Set(actions.map((a) => a.name));
  for (const m of readme.matchAll(MARKER)) {
    if (!names.has(m[1]))
      problems.push(`README.md has a generated region for '${m[1]}' but actions/${m[1]} is missing`);
  }
  for (const { name, action } of actions) {
    const begin = `<!-- BEGIN GENERATED: ${name} -->`;
    const end = `<!-- END GENERATED: ${name} -->`;
    const region = new RegExp(`${escapeRe(begin)}[\\s\\S]*?${escapeRe(end)}`);
    if (!text.includes(begin)) {
      problems.push(`README.md has no '${begin}' ... '${end}' region for actions/${name}`);
      continue;
    }
    if (!region.test(text)) {
      problems.push(`README.md has '${begin}' without '${end}'`);
      continue;
    }
    const fresh = `${begin}\n\n${renderTables(action)}\n\n${end}`;
    const next = text.replace(region, () => fresh);
    if (next !== text) drifted.push(name);
    text = next;
  }
  return { text, drifted, problems };
}
