/**
 * Turning one `--keep-going` build's internal-json log into a result per attribute. Pass/fail comes from the outputs
 * existing afterwards (DESIGN.md); the log says WHY: whose builder failed, which dependency took an attribute down,
 * and whether the cause was the infrastructure (timeout, signal, lost remote builder) rather than the build.
 *
 * Error messages seen (colours removed):
 * - Nix 2.8 (nix-store --realise): `builder for 'D' failed with exit code 1`, `building of 'D!*' from .drv file
 *   timed out after 1 seconds`, `1 dependencies of derivation 'D' failed to build`, `build of 'D', 'E' failed`.
 * - Nix 2.34 (nix build): `Cannot build 'D'.\nReason: builder failed with exit code 1.`, `Cannot build 'D'.\nReason:
 *   1 dependency failed.`, and for a timeout only `timed out after 1 seconds`, naming nothing. Failures of requested
 *   derivations are printed at the end, in the order they were requested (throwBuildErrors), so unnamed messages
 *   are matched, in order, with the requested derivations whose failure no named message explains. A dependency's
 *   timeout is printed while building, right after its build activity stops, and is attributed to that build.
 */
import { BuildLogTracker } from '../nix/log-tracker.js';
import { ActivityType, ResultType, stripAnsi, Verbosity, type NixLogEvent } from '../nix/log.js';

const DRV = /\/[^\s'"]*\/[a-z0-9]{32}-[^\s'"!^]+\.drv/;
const DEPENDENCY = /dependenc(?:y|ies)\b.*\bfailed|dependencies of derivation/i;
const SUMMARY = /^build of .* failed$/s;
/** Causes outside the derivation: retrying may help. */
const INFRA =
  /timed out after|failed due to signal|\bkilled\b|lost connection|unexpected end-of-file|unexpected EOF|connection (?:reset|refused|closed)|broken pipe|cannot build on '|bad_alloc|out of memory|unable to download|while substituting/i;

export function isInfraMessage(message: string): boolean {
  return INFRA.test(message);
}

/** The derivation a message names, without an output suffix (`!*`, `^*`). */
export function drvNamedIn(message: string): string | undefined {
  return DRV.exec(message)?.[0];
}

interface DrvRecord {
  startMs?: number;
  endMs?: number;
  /** Messages saying this derivation's own build failed. */
  failures: string[];
  /** Messages saying a dependency of it failed. */
  dependencyFailures: string[];
}

/** Consumes events (also feeding a BuildLogTracker for log lines) and keeps per-derivation times and failures. */
export class AttributionLog {
  readonly tracker: BuildLogTracker;
  /** Error messages naming no derivation, in order (timeouts on Nix 2.34, store and network errors). */
  readonly unnamed: string[] = [];
  private readonly records = new Map<string, DrvRecord>();
  /** The derivation whose build activity stopped with no event since but progress reports. */
  private justStopped: string | undefined;

  constructor(
    maxLinesPerDrv = 200,
    private readonly now: () => number = Date.now,
  ) {
    this.tracker = new BuildLogTracker({ maxLinesPerDrv });
  }

  consumeLine(line: string): NixLogEvent | undefined {
    const event = this.tracker.consumeLine(line);
    if (event) this.observe(event);
    return event;
  }

  private observe(event: NixLogEvent): void {
    const stoppedBefore = this.justStopped;
    const progress =
      event.kind === 'result' && (event.type === ResultType.Progress || event.type === ResultType.SetExpected);
    if (!progress) this.justStopped = undefined;
    if (event.kind === 'start' && event.type === ActivityType.Build && typeof event.fields[0] === 'string') {
      const rec = this.record(event.fields[0]);
      rec.startMs ??= this.now();
      rec.endMs = undefined;
    } else if (event.kind === 'stop') {
      const info = this.tracker.activity(event.id);
      if (info?.type === ActivityType.Build && info.drvPath) {
        this.end(this.record(info.drvPath));
        this.justStopped = info.drvPath;
      }
    } else if (event.kind === 'result' && event.type === ResultType.Progress && event.fields[2] === 0) {
      // Nix 2.8 stops the build activities of requested derivations only when everything is done, so their stop
      // says nothing about their duration; the Builds progress dropping to 0 running does: every open build ended.
      if (this.tracker.activity(event.id)?.type === ActivityType.Builds)
        for (const r of this.records.values()) this.end(r);
    } else if (event.kind === 'msg' && event.level === Verbosity.Error) {
      // ssh's messages inside Nix's carry CRLF line ends.
      const text = stripAnsi(event.msg)
        .replace(/\r\n/g, '\n')
        .replace(/^error:\s*/, '')
        .trim();
      if (text === '' || SUMMARY.test(text)) return;
      const drv = drvNamedIn(text);
      // Nix 2.34 reports a dependency's timeout as a bare `timed out after N seconds` right after its build stops.
      if (drv === undefined && stoppedBefore !== undefined) this.record(stoppedBefore).failures.push(text);
      else if (drv === undefined) this.unnamed.push(text);
      else if (DEPENDENCY.test(text)) this.record(drv).dependencyFailures.push(text);
      else this.record(drv).failures.push(text);
    }
  }

  private end(rec: DrvRecord): void {
    if (rec.startMs !== undefined && rec.endMs === undefined) rec.endMs = this.now();
  }

  private record(drv: string): DrvRecord {
    let rec = this.records.get(drv);
    if (!rec) {
      rec = { failures: [], dependencyFailures: [] };
      this.records.set(drv, rec);
    }
    return rec;
  }

  started(drv: string): boolean {
    return this.records.get(drv)?.startMs !== undefined;
  }

  /** Seconds from the derivation's build start to stop (to now while still running); 0 when it never started. */
  seconds(drv: string): number {
    const rec = this.records.get(drv);
    if (rec?.startMs === undefined) return 0;
    return ((rec.endMs ?? this.now()) - rec.startMs) / 1000;
  }

  ownFailures(drv: string): string[] {
    return this.records.get(drv)?.failures ?? [];
  }

  /** Derivations with a message saying their own build failed. */
  failedDrvs(): string[] {
    return [...this.records].filter(([, r]) => r.failures.length > 0).map(([d]) => d);
  }

  /** Attaches an unnamed message to a derivation (see the module comment). */
  assign(drv: string, message: string): void {
    this.record(drv).failures.push(message);
  }
}

export type AttemptStatus = 'built' | 'cached' | 'failed' | 'dependency-failed' | 'infra-failure';

export interface BuildTarget {
  attr: string;
  drvPath: string;
  outputs: Record<string, string>;
}

export interface AttemptOutcome {
  attr: string;
  status: AttemptStatus;
  /** Seconds the attribute's own derivation spent building. */
  duration: number;
  error?: string;
  /** For dependency-failed (and infra failures of a dependency): the derivation that failed. */
  failedDependency?: string;
  logTail?: string[];
}

export interface ClassifyInput {
  targets: readonly BuildTarget[];
  log: AttributionLog;
  /** Output paths valid after the build. */
  valid: ReadonlySet<string>;
  /** Derivation closure (`nix path-info -r --derivation`) of targets that neither built nor failed themselves. */
  closures: ReadonlyMap<string, readonly string[]>;
  exitCode: number;
  logLines: number;
}

/** Requested derivations that did not produce their outputs although their builder ran, or failed by name. */
export function unexplainedFailures(targets: readonly BuildTarget[], log: AttributionLog, valid: ReadonlySet<string>) {
  const drvs = [...new Set(targets.map((t) => t.drvPath))];
  return drvs.filter((d) => {
    const target = targets.find((t) => t.drvPath === d);
    const ok = target !== undefined && Object.values(target.outputs).every((p) => valid.has(p));
    return !ok && log.started(d) && log.ownFailures(d).length === 0;
  });
}

/** Matches unnamed messages with unexplained failed requested derivations, in request order. */
export function assignUnnamed(targets: readonly BuildTarget[], log: AttributionLog, valid: ReadonlySet<string>): void {
  const pending = unexplainedFailures(targets, log, valid);
  const messages = [...log.unnamed];
  if (pending.length === 1 && messages.length > 0) {
    for (const m of messages) log.assign(pending[0] as string, m);
    return;
  }
  pending.forEach((drv, i) => {
    if (messages[i] !== undefined && messages.length === pending.length) log.assign(drv, messages[i]);
  });
}

/** Derivations whose closure must be known to name a failed dependency. */
export function needsClosure(target: BuildTarget, log: AttributionLog, valid: ReadonlySet<string>): boolean {
  const ok = Object.values(target.outputs).every((p) => valid.has(p));
  return !ok && !log.started(target.drvPath) && log.ownFailures(target.drvPath).length === 0;
}

export function classify(input: ClassifyInput): AttemptOutcome[] {
  const { log, valid } = input;
  assignUnnamed(input.targets, log, valid);
  const failed = new Set(log.failedDrvs());
  return input.targets.map((t): AttemptOutcome => {
    const drv = t.drvPath;
    const duration = log.seconds(drv);
    if (Object.values(t.outputs).every((p) => valid.has(p))) {
      return { attr: t.attr, status: log.started(drv) ? 'built' : 'cached', duration };
    }
    const tail = log.tracker.drv(drv)?.lines.slice(-input.logLines) ?? [];
    const own = log.ownFailures(drv);
    if (own.length > 0 || log.started(drv)) {
      // Nix 2.34 names no derivation when it cannot reach a remote builder (`cannot build on 'ssh://...'`), then says
      // the derivation could not be built locally; the unreachable builder is the cause worth reporting.
      const remote = log.started(drv) ? [] : log.unnamed.filter((m) => m.startsWith("cannot build on '"));
      const reasons = [...own, ...remote];
      const error = reasons.length > 0 ? reasons.join('\n') : `the builder of ${drv} failed (Nix gave no reason)`;
      const status = reasons.some(isInfraMessage) ? 'infra-failure' : 'failed';
      return { attr: t.attr, status, duration, error, logTail: tail };
    }
    const closure = input.closures.get(drv) ?? [];
    const deps = closure.filter((d) => d !== drv && failed.has(d));
    const dep = deps.find((d) => log.started(d)) ?? deps[0];
    if (dep !== undefined) {
      const why = log.ownFailures(dep).join('\n');
      const depTail = log.tracker.drv(dep)?.lines.slice(-input.logLines) ?? [];
      return {
        attr: t.attr,
        status: isInfraMessage(why) ? 'infra-failure' : 'dependency-failed',
        duration,
        error: `dependency ${dep} failed${why ? `: ${why}` : ''}`,
        failedDependency: dep,
        logTail: depTail,
      };
    }
    // Nothing built it and nothing it needs failed: Nix itself stopped (killed, lost store, substitution error).
    const general = [...log.unnamed, ...log.tracker.textLines.slice(-5)].join('\n');
    return {
      attr: t.attr,
      status: 'infra-failure',
      duration,
      error: `Nix exited with code ${input.exitCode} without building ${drv}${general ? `:\n${general}` : ''}`,
      logTail: tail,
    };
  });
}
