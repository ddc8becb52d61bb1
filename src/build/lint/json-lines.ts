/**
 * Where each key of a JSON document is, by line: annotations must point at the flake.lock line of the offending
 * field, and JSON.parse forgets positions. A small scanner over the raw text records, for every object key, the
 * 1-based line its key string starts on. Call it only on text JSON.parse accepted; it throws on anything else.
 */

/** Key of a path in the returned map: JSON of the key array, so any key (even with dots or slashes) is exact. */
export function pathKey(path: readonly string[]): string {
  return JSON.stringify(path);
}

export function keyLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let pos = 0;
  let line = 1;

  const skipWs = (): void => {
    while (pos < text.length) {
      const c = text[pos];
      if (c === '\n') line++;
      else if (c !== ' ' && c !== '\t' && c !== '\r') return;
      pos++;
    }
  };
  function fail(what: string): never {
    throw new Error(`JSON scan: ${what} at line ${line}`);
  }
  const readString = (): string => {
    const start = pos;
    pos++; // opening quote
    while (pos < text.length && text[pos] !== '"') pos += text[pos] === '\\' ? 2 : 1;
    if (pos >= text.length) fail('unterminated string');
    pos++;
    // JSON strings cannot contain raw newlines, so `line` needs no update here.
    return JSON.parse(text.slice(start, pos)) as string;
  };
  const value = (path: string[]): void => {
    skipWs();
    const c = text[pos];
    if (c === '{') {
      pos++;
      skipWs();
      if (text[pos] === '}') {
        pos++;
        return;
      }
      for (;;) {
        skipWs();
        if (text[pos] !== '"') fail('expected a key');
        const keyLine = line;
        const key = readString();
        const child = [...path, key];
        lines.set(pathKey(child), keyLine);
        skipWs();
        if (text[pos] !== ':') fail("expected ':'");
        pos++;
        value(child);
        skipWs();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === '}') {
          pos++;
          return;
        }
        fail("expected ',' or '}'");
      }
    } else if (c === '[') {
      pos++;
      skipWs();
      if (text[pos] === ']') {
        pos++;
        return;
      }
      for (let i = 0; ; i++) {
        value([...path, String(i)]);
        skipWs();
        if (text[pos] === ',') {
          pos++;
          continue;
        }
        if (text[pos] === ']') {
          pos++;
          return;
        }
        fail("expected ',' or ']'");
      }
    } else if (c === '"') {
      readString();
    } else {
      // number, true, false, null: none can span lines.
      const m = /^[-+0-9.eEa-z]+/.exec(text.slice(pos, pos + 64));
      if (!m) fail('unexpected character');
      pos += m[0].length;
    }
  };

  value([]);
  return lines;
}
