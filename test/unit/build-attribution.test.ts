/**
 * Attribution from recorded logs: test/fixtures/build/nix-<version>-keep-going.jsonl is the stderr of the engine's
 * build command for the fixture flake's pass-a, fail, dep-failed, slow and flaky checks (`--option timeout 3`), from
 * `nix-store --realise` (Nix 2.8.0) and `nix build DRV^*` (Nix 2.34.8). Output validity and closures, which the
 * engine asks Nix for, are given here as they were.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import {
  AttributionLog,
  classify,
  drvNamedIn,
  isInfraMessage,
  needsClosure,
  type AttemptOutcome,
  type BuildTarget,
} from '../../src/build/attribution.js';
import { buildWithRetries } from '../../src/build/retry.js';

const DRV = {
  'pass-a': '/nix/store/2zngxq7n6ygfji4kw47wj3s4pl0x74pn-pass-a.drv',
  fail: '/nix/store/v2qcalmy4izpc4ln70sqcgrxiiwisax5-fail.drv',
  'dep-failed': '/nix/store/ca5nzl42zghxdcy26hbhx1gdciw7vpgs-dep-failed.drv',
  slow: '/nix/store/x11la9db4c5bmnlqj4h5a1dp4k09aqyd-slow.drv',
  flaky: '/nix/store/643n3rz37nyqax6ykspiycw9c0xw6dnz-flaky.drv',
};
const BROKEN = '/nix/store/mi0wb0ayhc359b96jbbykqpyj9c1961f-broken-dep.drv';

const targets: BuildTarget[] = Object.entries(DRV).map(([name, drvPath]) => ({
  attr: `checks.x86_64-linux.${name}`,
  drvPath,
  outputs: { out: `/nix/store/${'0'.repeat(32)}-${name}` },
}));
const valid = new Set(['pass-a', 'slow'].map((n) => `/nix/store/${'0'.repeat(32)}-${n}`));

/** Replays a recorded log with a clock that advances one second per line. */
function replay(version: string): AttributionLog {
  let line = 0;
  const log = new AttributionLog(200, () => line * 1000);
  const text = readFileSync(path.resolve(`test/fixtures/build/nix-${version}-keep-going.jsonl`), 'utf8');
  for (const l of text.split('\n')) {
    line++;
    log.consumeLine(l);
  }
  return log;
}

function outcomes(version: string): Record<string, AttemptOutcome> {
  const log = replay(version);
  const closures = new Map<string, string[]>();
  for (const t of targets) if (needsClosure(t, log, valid)) closures.set(t.drvPath, [BROKEN, t.drvPath]);
  expect([...closures.keys()]).toEqual([DRV['dep-failed']]);
  const list = classify({ targets, log, valid, closures, exitCode: 1, logLines: 5 });
  return Object.fromEntries(list.map((o) => [o.attr.split('.').pop(), o]));
}

describe.each(['2.8.0', '2.34.8'])('attribution from a Nix %s log', (version) => {
  const o = outcomes(version);

  it('passing checks are built', () => {
    expect(o['pass-a']).toMatchObject({ status: 'built' });
    expect(o.slow).toMatchObject({ status: 'built' });
  });

  it('the failing check keeps its own reason and log tail', () => {
    expect(o.fail?.status).toBe('failed');
    expect(o.fail?.error).toMatch(/fail\.drv.*\n?.*exit code 1/);
    expect(o.fail?.logTail).toEqual(['FIXTURE: fail is running', 'FIXTURE-ASSERTION: expected 1, got 2 <&> ]]>']);
  });

  it('the check whose dependency failed names it and shows its log', () => {
    expect(o['dep-failed']).toMatchObject({ status: 'dependency-failed', failedDependency: BROKEN });
    expect(o['dep-failed']?.error).toMatch(/exit code 3/);
    expect(o['dep-failed']?.logTail).toEqual(['FIXTURE: broken-dep is about to fail']);
  });

  it('the timed-out check is an infrastructure failure', () => {
    expect(o.flaky?.status).toBe('infra-failure');
    expect(o.flaky?.error).toMatch(/timed out after 3 seconds/);
    expect(o.flaky?.logTail).toEqual(['FIXTURE: flaky hangs']);
  });

  it('durations end when the build ends, not when Nix 2.8 stops the activity at exit', () => {
    // Replayed at one (synthetic) second per line: a duration is the number of lines from the build's start to its
    // result, the same in both recordings, where the activity's stop at Nix 2.8's exit would give about a hundred.
    const spans = Object.fromEntries((['pass-a', 'slow', 'fail'] as const).map((n) => [n, o[n]?.duration]));
    expect(spans).toEqual({ 'pass-a': 6, slow: 7, fail: 7 });
    expect(o['dep-failed']?.duration).toBe(0);
  });
});

describe('attribution details', () => {
  it('names derivations in messages of both versions', () => {
    expect(drvNamedIn(`building of '${DRV.flaky}!*' from .drv file timed out after 3 seconds`)).toBe(DRV.flaky);
    expect(drvNamedIn(`Cannot build '${DRV.fail}'.\nReason: builder failed with exit code 1.`)).toBe(DRV.fail);
    expect(drvNamedIn(`build of '${DRV.fail}^*' failed`)).toBe(DRV.fail);
    expect(drvNamedIn('timed out after 3 seconds')).toBeUndefined();
  });

  it('tells infrastructure failures from build failures', () => {
    for (const m of [
      'timed out after 3 seconds',
      `builder for '${DRV.fail}' failed due to signal 9 (Killed)`,
      "cannot build on 'ssh://builder': lost connection",
      'error: unexpected end-of-file',
    ]) {
      expect(isInfraMessage(m)).toBe(true);
    }
    for (const m of [
      `builder for '${DRV.fail}' failed with exit code 1`,
      `builder for '${DRV.fail}' failed to produce output path for output 'out'`,
      "a 'aarch64-linux' with features {} is required to build it, but I am a 'x86_64-linux'",
    ]) {
      expect(isInfraMessage(m)).toBe(false);
    }
  });

  it("a dependency's bare timeout (Nix 2.34) belongs to the build that just stopped", () => {
    // Recorded from Nix 2.34.8: `depslow` needs `inner-slow`, which sleeps past `--option timeout 1`.
    const inner = '/nix/store/n2vm8j73ajrf65jl7ijj2irmz3c9y2ma-inner-slow.drv';
    const outer = '/nix/store/0v6vn439qa5qbzzcs7mnx7a7cprdw7rq-depslow.drv';
    const lines = [
      `{"action":"start","id":7,"level":0,"parent":0,"text":"","type":104}`,
      `{"action":"start","fields":["${inner}","",1,1],"id":21,"level":3,"parent":0,"text":"building","type":105}`,
      `{"action":"result","fields":["inner"],"id":21,"type":101}`,
      `{"action":"stop","id":21}`,
      `{"action":"result","fields":[0,1,0,1],"id":7,"type":105}`,
      `{"action":"msg","level":0,"msg":"error: timed out after 1 seconds","raw_msg":"timed out after 1 seconds"}`,
      `{"action":"stop","id":7}`,
      `{"action":"msg","level":0,"msg":"error: Cannot build '${outer}'.\\n       Reason: 1 dependency failed."}`,
    ];
    const log = new AttributionLog();
    for (const l of lines) log.consumeLine(`@nix ${l}`);
    expect(log.unnamed).toEqual([]);
    const target = { attr: 'checks.x.depslow', drvPath: outer, outputs: { out: '/nix/store/o' } };
    expect(needsClosure(target, log, new Set())).toBe(true);
    const [o] = classify({
      targets: [target],
      log,
      valid: new Set(),
      closures: new Map([[outer, [inner, outer]]]),
      exitCode: 1,
      logLines: 5,
    });
    expect(o).toMatchObject({ status: 'infra-failure', failedDependency: inner, logTail: ['inner'] });
    expect(o?.error).toBe(`dependency ${inner} failed: timed out after 1 seconds`);
  });

  it('a derivation nobody built and nothing failed under is an infrastructure failure', () => {
    const log = new AttributionLog();
    log.consumeLine('@nix {"action":"msg","level":0,"msg":"error: opening lock file: No space left"}');
    const [o] = classify({
      targets: targets.slice(0, 1),
      log,
      valid: new Set(),
      closures: new Map(),
      exitCode: 1,
      logLines: 5,
    });
    expect(o).toMatchObject({ status: 'infra-failure' });
    expect(o?.error).toMatch(/Nix exited with code 1 without building .*pass-a\.drv:\nopening lock file/);
  });

  it('outputs already valid without a build are cached', () => {
    const [o] = classify({
      targets: targets.slice(0, 1),
      log: new AttributionLog(),
      valid,
      closures: new Map(),
      exitCode: 0,
      logLines: 5,
    });
    expect(o).toMatchObject({ status: 'cached', duration: 0 });
  });
});

describe('retries', () => {
  const t = (name: string): BuildTarget => ({ attr: name, drvPath: `/nix/store/x-${name}.drv`, outputs: {} });

  it('retries infrastructure failures only and marks a later pass flaky', async () => {
    const calls: string[][] = [];
    const script: Record<string, string[]> = { flaky: ['infra-failure', 'built'], fail: ['failed'], ok: ['built'] };
    const results = await buildWithRetries([t('ok'), t('fail'), t('flaky')], 2, async (ts, n) => {
      calls.push(ts.map((x) => x.attr));
      return ts.map((x) => ({
        attr: x.attr,
        status: script[x.attr]?.[n - 1] as AttemptOutcome['status'],
        duration: n,
        ...(n === 1 && x.attr === 'flaky' ? { error: 'timed out after 3 seconds' } : {}),
      }));
    });
    expect(calls).toEqual([['ok', 'fail', 'flaky'], ['flaky']]);
    expect(results.map((r) => [r.attr, r.status, r.attempts])).toEqual([
      ['ok', 'built', 1],
      ['fail', 'failed', 1],
      ['flaky', 'flaky', 2],
    ]);
    expect(results[2]?.previousErrors).toEqual(['timed out after 3 seconds']);
  });

  it('gives up after the configured retries, and retries nothing with 0', async () => {
    let calls = 0;
    const attempt = async (ts: readonly BuildTarget[]) => {
      calls++;
      return ts.map((x) => ({ attr: x.attr, status: 'infra-failure' as const, duration: 0, error: 'killed' }));
    };
    expect((await buildWithRetries([t('a')], 1, attempt))[0]).toMatchObject({ status: 'infra-failure', attempts: 2 });
    expect(calls).toBe(2);
    calls = 0;
    expect((await buildWithRetries([t('a')], 0, attempt))[0]).toMatchObject({ status: 'infra-failure', attempts: 1 });
    expect(calls).toBe(1);
  });

  it('an infrastructure failure followed by a real failure is a failure', async () => {
    const seq = ['infra-failure', 'failed'] as const;
    const results = await buildWithRetries([t('a')], 3, async (ts, n) =>
      ts.map((x) => ({ attr: x.attr, status: seq[n - 1] ?? 'failed', duration: 0 })),
    );
    expect(results[0]).toMatchObject({ status: 'failed', attempts: 2 });
  });
});
