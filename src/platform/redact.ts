/**
 * Secret redaction for platforms without runtime masking (GitLab CI): the runner prints and uploads whatever we write,
 * so every string leaving the process goes through `redact` first.
 */

export const MASK = '[MASKED]';

/**
 * Lines of a multi-line secret shorter than this are not registered on their own: they are mostly structure (`}`,
 * `--`, blank lines of a PEM or JSON document), and masking them everywhere would shred the log while hiding next
 * to nothing. The whole value is always registered, whatever its length.
 */
export const MIN_LINE_LENGTH = 4;

/**
 * A line starting with `::` could be taken for a GitHub workflow command (the reason @actions/core must never run
 * on GitLab); a leading space makes it inert text. \r counts as a line break because terminals render it as one.
 */
export function defuse(text: string): string {
  return text.replace(/(^|[\r\n])::/g, '$1 ::');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Redactor {
  private readonly secrets = new Set<string>();
  private pattern: RegExp | undefined;

  /**
   * Registers a secret: the value as given, trimmed, JSON-escaped (actions print JSON too) and, for multi-line
   * values, each line of at least MIN_LINE_LENGTH characters. Empty and whitespace-only values are ignored because
   * masking spaces would replace every blank in the log. Returns how many short lines were left out.
   */
  add(value: string): number {
    if (value.trim() === '') return 0;
    const candidates = [value, value.trim(), JSON.stringify(value).slice(1, -1)];
    let skipped = 0;
    if (/[\r\n]/.test(value)) {
      for (const line of value.split(/\r\n|\n|\r/)) {
        const t = line.trim();
        if (t.length >= MIN_LINE_LENGTH) candidates.push(t);
        else if (t !== '') skipped++;
      }
    }
    for (const c of candidates) if (c !== '') this.secrets.add(c);
    // Longest first, in one pass: a secret containing another is masked whole, and a mask is never re-scanned.
    const sorted = [...this.secrets].sort((a, b) => b.length - a.length);
    this.pattern = new RegExp(sorted.map(escapeRegExp).join('|'), 'g');
    return skipped;
  }

  redact(text: string): string {
    return this.pattern ? text.replace(this.pattern, MASK) : text;
  }
}
