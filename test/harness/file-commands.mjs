// Parsers for what a GitHub Actions step hands back to the runner: the file commands (GITHUB_OUTPUT, GITHUB_STATE,
// GITHUB_ENV, GITHUB_PATH) and the `::command props::message` workflow commands on stdout. They follow the
// runner's own rules (actions/runner FileCommandManager.cs and ActionCommand.cs) so a bundle that passes here
// behaves the same on a real runner; malformed files throw, as the runner fails the step for them.

/**
 * Parses a GITHUB_OUTPUT / GITHUB_STATE / GITHUB_ENV file: `name=value` lines and the heredoc form
 * `name<<DELIM` ... `DELIM`. Whichever of `=` and `<<` comes first on the line decides the form, as in the runner.
 * Later writes of the same name win.
 */
export function parseKeyValueFile(text, file = 'file') {
  const result = {};
  const lines = text.split(/\r?\n/);
  // A trailing newline leaves one empty element; empty lines are skipped anyway.
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line === '') continue;
    const eq = line.indexOf('=');
    const heredoc = line.indexOf('<<');
    if (eq >= 0 && (heredoc < 0 || eq < heredoc)) {
      const name = line.slice(0, eq);
      if (name === '') throw new Error(`${file}: empty name in line ${i + 1}: ${line}`);
      result[name] = line.slice(eq + 1);
    } else if (heredoc > 0) {
      const name = line.slice(0, heredoc);
      const delimiter = line.slice(heredoc + 2);
      if (delimiter === '') throw new Error(`${file}: empty delimiter in line ${i + 1}: ${line}`);
      const value = [];
      let closed = false;
      for (i++; i < lines.length; i++) {
        if (lines[i] === delimiter) {
          closed = true;
          break;
        }
        value.push(lines[i]);
      }
      if (!closed) throw new Error(`${file}: matching delimiter '${delimiter}' not found for '${name}'`);
      result[name] = value.join('\n');
    } else {
      throw new Error(`${file}: invalid line ${i + 1} (neither name=value nor name<<DELIMITER): ${line}`);
    }
  }
  return result;
}

/** GITHUB_PATH: one directory per line, trimmed, in the order the step wrote them. */
export function parsePathFile(text) {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
}

/**
 * PATH for a later step: the runner keeps added directories most-recent-first (a re-added directory moves to the
 * front) ahead of the step's own PATH.
 */
export function prependPath(added, basePath) {
  const order = [];
  for (const dir of added) {
    const at = order.indexOf(dir);
    if (at >= 0) order.splice(at, 1);
    order.push(dir);
  }
  return [...order.reverse(), ...(basePath ? [basePath] : [])].join(':');
}

// The runner's escaping: properties also escape `:` and `,` because those delimit them.
function unescapeData(s) {
  return s.replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/%25/g, '%');
}
function unescapeProperty(s) {
  return s
    .replace(/%0D/gi, '\r')
    .replace(/%0A/gi, '\n')
    .replace(/%3A/gi, ':')
    .replace(/%2C/gi, ',')
    .replace(/%25/g, '%');
}

const COMMAND = /^::([A-Za-z][A-Za-z0-9_-]*)(?: ([^:]*))?::(.*)$/;
const NUMERIC = { line: 'line', endLine: 'endLine', col: 'column', column: 'column', endColumn: 'endColumn' };

/**
 * Parses workflow commands from a step's stdout: annotations (error/warning/notice with file, line, title...),
 * `failed` (the messages of `::error`, which is what @actions/core setFailed prints), `masks` (::add-mask::) and
 * `debug` lines. Honours `::stop-commands::TOKEN` ... `::TOKEN::`, during which the runner ignores commands.
 */
export function parseWorkflowCommands(stdout) {
  const annotations = [];
  const masks = [];
  const debug = [];
  let stopToken;
  for (const raw of stdout.split(/\r?\n/)) {
    const line = raw.trimStart();
    if (stopToken !== undefined) {
      if (line === `::${stopToken}::`) stopToken = undefined;
      continue;
    }
    const m = COMMAND.exec(line);
    if (!m) continue;
    const [, command, propText = '', data] = m;
    const message = unescapeData(data);
    if (command === 'stop-commands') {
      stopToken = data;
    } else if (command === 'add-mask') {
      masks.push(message);
    } else if (command === 'debug') {
      debug.push(message);
    } else if (command === 'error' || command === 'warning' || command === 'notice') {
      const annotation = { level: command, message };
      for (const pair of propText.split(',')) {
        const eq = pair.indexOf('=');
        if (eq <= 0) continue;
        const key = pair.slice(0, eq);
        const value = unescapeProperty(pair.slice(eq + 1));
        if (key in NUMERIC) annotation[NUMERIC[key]] = Number(value);
        else annotation[key] = value;
      }
      annotations.push(annotation);
    }
  }
  const failed = annotations.filter((a) => a.level === 'error').map((a) => a.message);
  return { annotations, failed, masks, debug };
}

/** Replaces every registered mask with `***`, as the runner does in the log it shows. */
export function maskLog(text, masks) {
  let out = text;
  for (const secret of [...masks].sort((a, b) => b.length - a.length)) {
    if (secret !== '') out = out.split(secret).join('***');
  }
  return out;
}
