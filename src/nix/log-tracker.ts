/**
 * Follows a stream of internal-json log events and keeps what is needed to attribute a failure to a derivation: per
 * activity its type, parent and derivation; per derivation its last log lines, phase and whether it is still building;
 * the substitutions; and the error messages. Pass/fail is decided elsewhere (exit status and outputs); this is for
 * attribution and rendering, so memory stays bounded no matter how much a builder prints.
 */
import { ActivityType, parseLogLine, ResultType, Verbosity, type MsgEvent, type NixLogEvent } from './log.js';

export interface ActivityInfo {
  id: string;
  type: number;
  text: string;
  parent?: string;
  /** For builds and post-build hooks: the derivation. */
  drvPath?: string;
  /** For substitutions, copies and file transfers: the store path or URL. */
  target?: string;
  stopped: boolean;
}

export interface DrvBuild {
  drvPath: string;
  /** The remote machine from the build activity, '' for a local build. */
  machine: string;
  phase?: string;
  /** The last lines of its log, oldest first. */
  lines: string[];
  /** Lines dropped to keep `lines` bounded. */
  droppedLines: number;
  building: boolean;
}

export interface Substitution {
  path: string;
  substituter: string;
  done: boolean;
}

export interface Progress {
  done: number;
  expected: number;
  running: number;
  failed: number;
}

export interface BuildLogTrackerOptions {
  /** Lines kept per derivation (and of plain stderr text). Default 200. */
  maxLinesPerDrv?: number;
  /** Error and warning messages kept. Default 100. */
  maxMessages?: number;
}

export class BuildLogTracker {
  readonly maxLinesPerDrv: number;
  readonly maxMessages: number;
  /** Messages at warning level or above, oldest first, bounded. */
  readonly messages: MsgEvent[] = [];
  /** Lines that were not @nix events, bounded. */
  readonly textLines: string[] = [];

  private readonly activities = new Map<string, ActivityInfo>();
  private readonly builds = new Map<string, DrvBuild>();
  private readonly startOrder: string[] = [];
  private readonly stopOrder: string[] = [];
  private readonly substs = new Map<string, Substitution>();
  private readonly progressByType = new Map<number, Progress>();

  constructor(opts: BuildLogTrackerOptions = {}) {
    this.maxLinesPerDrv = Math.max(1, opts.maxLinesPerDrv ?? 200);
    this.maxMessages = Math.max(1, opts.maxMessages ?? 100);
  }

  /** Parses and consumes one stderr line; returns the event for callers that also render it. */
  consumeLine(line: string): NixLogEvent | undefined {
    const event = parseLogLine(line);
    if (event) this.consume(event);
    return event;
  }

  consume(event: NixLogEvent): void {
    switch (event.kind) {
      case 'text':
        push(this.textLines, event.text, this.maxLinesPerDrv);
        return;
      case 'msg':
        if (event.level <= Verbosity.Warn) push(this.messages, event, this.maxMessages);
        return;
      case 'start':
        return this.onStart(event.id, event.type, event.text, event.parent, event.fields);
      case 'stop':
        return this.onStop(event.id);
      case 'result':
        return this.onResult(event.id, event.type, event.fields);
      case 'other':
        return;
    }
  }

  private onStart(id: string, type: number, text: string, parent: string | undefined, fields: (string | number)[]) {
    const info: ActivityInfo = { id, type, text, stopped: false };
    if (parent !== undefined) info.parent = parent;
    const first = typeof fields[0] === 'string' ? fields[0] : undefined;
    if ((type === ActivityType.Build || type === ActivityType.PostBuildHook) && first) info.drvPath = first;
    if (
      (type === ActivityType.Substitute || type === ActivityType.CopyPath || type === ActivityType.FileTransfer) &&
      first
    ) {
      info.target = first;
    }
    this.activities.set(id, info);

    if (type === ActivityType.Build && first) {
      const machine = typeof fields[1] === 'string' ? fields[1] : '';
      const existing = this.builds.get(first);
      // A rebuild (another round, --rebuild, another machine) continues the same record.
      if (existing) Object.assign(existing, { building: true, machine });
      else this.builds.set(first, { drvPath: first, machine, lines: [], droppedLines: 0, building: true });
      this.startOrder.push(first);
    }
    if (type === ActivityType.Substitute && first) {
      this.substs.set(first, { path: first, substituter: typeof fields[1] === 'string' ? fields[1] : '', done: false });
    }
  }

  private onStop(id: string) {
    const info = this.activities.get(id);
    if (!info || info.stopped) return;
    info.stopped = true;
    if (info.type === ActivityType.Build && info.drvPath) {
      const build = this.builds.get(info.drvPath);
      if (build) build.building = false;
      this.stopOrder.push(info.drvPath);
    }
    if (info.type === ActivityType.Substitute && info.target) {
      const s = this.substs.get(info.target);
      if (s) s.done = true;
    }
  }

  private onResult(id: string, type: number, fields: (string | number)[]) {
    if (type === ResultType.BuildLogLine || type === ResultType.PostBuildLogLine) {
      const drv = this.drvOf(id);
      const build = drv ? this.builds.get(drv) : undefined;
      const line = String(fields[0] ?? '');
      if (build) {
        if (push(build.lines, line, this.maxLinesPerDrv)) build.droppedLines++;
      } else {
        push(this.textLines, line, this.maxLinesPerDrv);
      }
    } else if (type === ResultType.SetPhase) {
      const drv = this.drvOf(id);
      const build = drv ? this.builds.get(drv) : undefined;
      if (build && typeof fields[0] === 'string') build.phase = fields[0];
    } else if (type === ResultType.Progress) {
      const info = this.activities.get(id);
      if (info) {
        const [done, expected, running, failed] = fields.map((f) => (typeof f === 'number' ? f : 0));
        this.progressByType.set(info.type, {
          done: done ?? 0,
          expected: expected ?? 0,
          running: running ?? 0,
          failed: failed ?? 0,
        });
      }
    }
  }

  /** The derivation an activity belongs to: its own, or the nearest ancestor's. */
  drvOf(id: string): string | undefined {
    const seen = new Set<string>();
    for (let cur = this.activities.get(id); cur && !seen.has(cur.id); cur = this.activities.get(cur.parent ?? '')) {
      if (cur.drvPath) return cur.drvPath;
      seen.add(cur.id);
    }
    return undefined;
  }

  activity(id: string): ActivityInfo | undefined {
    return this.activities.get(id);
  }

  drv(drvPath: string): DrvBuild | undefined {
    return this.builds.get(drvPath);
  }

  /** Every derivation seen building, in the order the builds started. */
  drvs(): DrvBuild[] {
    return unique(this.startOrder).map((d) => this.builds.get(d) as DrvBuild);
  }

  /** Derivations whose build started, in order (a rebuild is listed once). */
  started(): string[] {
    return unique(this.startOrder);
  }

  /** Derivations whose build activity stopped, in order. Stopping says nothing about success. */
  stopped(): string[] {
    return unique(this.stopOrder);
  }

  /** Derivations still building (e.g. when Nix was killed or the log was cut). */
  running(): string[] {
    return this.drvs()
      .filter((b) => b.building)
      .map((b) => b.drvPath);
  }

  substitutions(): Substitution[] {
    return [...this.substs.values()];
  }

  /** The last progress report of the activity type (Builds, CopyPaths, ...). */
  progress(type: number): Progress | undefined {
    return this.progressByType.get(type);
  }

  /** Messages at error level. */
  errors(): MsgEvent[] {
    return this.messages.filter((m) => m.level === Verbosity.Error);
  }
}

/** Appends and drops the oldest item beyond `max`; true when one was dropped. */
function push<T>(list: T[], item: T, max: number): boolean {
  list.push(item);
  if (list.length <= max) return false;
  list.shift();
  return true;
}

function unique(items: readonly string[]): string[] {
  return [...new Set(items)];
}
