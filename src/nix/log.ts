/**
 * Parsing `--log-format internal-json` output: every structured line on stderr is `@nix {json}` with an `action` of
 * start, stop, result or msg (Nix's JSONLogger). Everything else on stderr (and anything we cannot parse) is plain
 * text, kept so that nothing Nix or a builder printed is lost.
 */

/** Activity types (Nix's logging.hh ActivityType). */
export const ActivityType = {
  Unknown: 0,
  CopyPath: 100,
  FileTransfer: 101,
  Realise: 102,
  CopyPaths: 103,
  Builds: 104,
  Build: 105,
  OptimiseStore: 106,
  VerifyPaths: 107,
  Substitute: 108,
  QueryPathInfo: 109,
  PostBuildHook: 110,
  BuildWaiting: 111,
  FetchTree: 112,
} as const;

/** Result types (Nix's logging.hh ResultType). */
export const ResultType = {
  FileLinked: 100,
  BuildLogLine: 101,
  UntrustedPath: 102,
  CorruptedPath: 103,
  SetPhase: 104,
  Progress: 105,
  SetExpected: 106,
  PostBuildLogLine: 107,
  FetchStatus: 108,
} as const;

/** Message levels (Nix's Verbosity). */
export const Verbosity = {
  Error: 0,
  Warn: 1,
  Notice: 2,
  Info: 3,
  Talkative: 4,
  Chatty: 5,
  Debug: 6,
  Vomit: 7,
} as const;

export type LogField = string | number;

export interface TextEvent {
  kind: 'text';
  text: string;
}
export interface StartEvent {
  kind: 'start';
  id: string;
  type: number;
  level: number;
  text: string;
  /** The enclosing activity; undefined at top level. */
  parent?: string;
  fields: LogField[];
}
export interface StopEvent {
  kind: 'stop';
  id: string;
}
export interface ResultEvent {
  kind: 'result';
  id: string;
  type: number;
  fields: LogField[];
}
export interface MsgEvent {
  kind: 'msg';
  level: number;
  /** As printed by Nix, with ANSI colours and the `error:` prefix. */
  msg: string;
  /** Without the prefix, when Nix provides it. */
  rawMsg?: string;
  file?: string;
  line?: number;
  column?: number;
}
/** A well-formed @nix line with an action this parser does not know (future Nix versions). */
export interface OtherEvent {
  kind: 'other';
  action: string;
  data: Record<string, unknown>;
}

export type NixLogEvent = TextEvent | StartEvent | StopEvent | ResultEvent | MsgEvent | OtherEvent;

const PREFIX = '@nix ';

/**
 * Activity ids are `pid << 32` plus a counter, which exceeds 2^53 once the pid is above about two million, so they are
 * turned into strings before JSON.parse rounds them. The match is anchored on `{` or `,`, which cannot precede an
 * unescaped quote inside a JSON string.
 */
const BIG_IDS = /([{,]\s*)"(id|parent)"\s*:\s*(\d+)/g;

/** Parses one stderr line; undefined for an empty line. */
export function parseLogLine(line: string): NixLogEvent | undefined {
  const text = line.replace(/\r?\n$/, '');
  if (text.trim() === '') return undefined;
  if (!text.startsWith(PREFIX)) return { kind: 'text', text };
  let data: unknown;
  try {
    data = JSON.parse(text.slice(PREFIX.length).replace(BIG_IDS, '$1"$2":"$3"'));
  } catch {
    return { kind: 'text', text };
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return { kind: 'text', text };
  const d = data as Record<string, unknown>;
  switch (d.action) {
    case 'start': {
      const event: StartEvent = {
        kind: 'start',
        id: idOf(d.id),
        type: num(d.type),
        level: num(d.level),
        text: typeof d.text === 'string' ? d.text : '',
        fields: fieldsOf(d.fields),
      };
      const parent = idOf(d.parent);
      if (parent !== '' && parent !== '0') event.parent = parent;
      return event;
    }
    case 'stop':
      return { kind: 'stop', id: idOf(d.id) };
    case 'result':
      return { kind: 'result', id: idOf(d.id), type: num(d.type), fields: fieldsOf(d.fields) };
    case 'msg': {
      const event: MsgEvent = { kind: 'msg', level: num(d.level), msg: typeof d.msg === 'string' ? d.msg : '' };
      if (typeof d.raw_msg === 'string') event.rawMsg = d.raw_msg;
      if (typeof d.file === 'string') event.file = d.file;
      if (typeof d.line === 'number') event.line = d.line;
      if (typeof d.column === 'number') event.column = d.column;
      return event;
    }
    default:
      return { kind: 'other', action: typeof d.action === 'string' ? d.action : '', data: d };
  }
}

function idOf(v: unknown): string {
  return typeof v === 'string' || typeof v === 'number' ? String(v) : '';
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : -1;
}

function fieldsOf(v: unknown): LogField[] {
  if (!Array.isArray(v)) return [];
  return v.filter((f): f is LogField => typeof f === 'string' || typeof f === 'number');
}

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007]*(?:\u0007|\u001b\\)/g;

/** Removes terminal colour and OSC sequences (Nix colours its messages even in JSON). */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, '');
}
