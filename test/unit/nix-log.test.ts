import { describe, expect, it } from '@jest/globals';
import { ActivityType, parseLogLine, ResultType, stripAnsi } from '../../src/nix/log.js';
import { BuildLogTracker } from '../../src/nix/log-tracker.js';

const DEP = '/nix/store/cl85j0ybn84hylixff1yyb8ya73lkn8q-dep.drv';
const BROKEN = '/nix/store/4m69d2ndyda2slqc3mmxqnqn1ynyxg7z-broken.drv';

// Captured from Debian's Nix 2.8.0: `nix build --log-format internal-json` of a derivation whose dependency builds
// and which then sets a phase, prints two lines and exits 3. (Progress results trimmed.)
const NIX_28_FAILED_BUILD = `@nix {"action":"start","id":99037650878464,"level":0,"text":"","type":102}
@nix {"action":"start","id":99037650878465,"level":0,"text":"","type":104}
@nix {"action":"start","id":99037650878466,"level":0,"text":"","type":103}
@nix {"action":"result","fields":[0,1,0,0],"id":99037650878465,"type":105}
@nix {"action":"result","fields":[101,0],"id":99037650878464,"type":106}
@nix {"action":"start","id":99037650878467,"level":6,"text":"querying info about missing paths","type":0}
@nix {"action":"stop","id":99037650878467}
@nix {"action":"start","fields":["${DEP}","",1,1],"id":99037650878468,"level":3,"text":"building '${DEP}'","type":105}
@nix {"action":"result","fields":[0,2,1,0],"id":99037650878465,"type":105}
@nix {"action":"result","fields":["building dep"],"id":99037650878468,"type":101}
@nix {"action":"result","fields":[1,2,0,0],"id":99037650878465,"type":105}
@nix {"action":"stop","id":99037650878468}
@nix {"action":"start","fields":["${BROKEN}","",1,1],"id":99037650878469,"level":3,"text":"building '${BROKEN}'","type":105}
@nix {"action":"result","fields":["buildPhase"],"id":99037650878469,"type":104}
@nix {"action":"result","fields":["compiling"],"id":99037650878469,"type":101}
@nix {"action":"result","fields":["oops: failed"],"id":99037650878469,"type":101}
@nix {"action":"result","fields":[1,1,0,1],"id":99037650878465,"type":105}
@nix {"action":"stop","id":99037650878469}
@nix {"action":"stop","id":99037650878466}
@nix {"action":"stop","id":99037650878465}
@nix {"action":"stop","id":99037650878464}
@nix {"action":"msg","column":null,"file":null,"level":0,"line":null,"msg":"\\u001b[31;1merror:\\u001b[0m \\u001b[35;1m\\u001b[0mbuilder for '\\u001b[35;1m${BROKEN}\\u001b[0m' failed with exit code 3\\u001b[0m","raw_msg":"\\u001b[35;1m\\u001b[0mbuilder for '\\u001b[35;1m${BROKEN}\\u001b[0m' failed with exit code 3\\u001b[0m"}`;

// Shaped like current Nix (2.2x/2.3x): nlohmann-sorted keys, `parent` on every start, a substitution with its
// download as a child activity, a remote build, and the multi-line error that quotes the last log lines.
const HELLO = '/nix/store/26xbg1ndr7hbcncrlf9nhx5is2b25d13-hello-2.12.1';
const APP = '/nix/store/7l2wxs0qk9z2p0b0k6c3rlh3i0vcb0h1-app-1.0.drv';
const CURRENT = `@nix {"action":"start","id":5368709120000,"level":0,"parent":0,"text":"","type":104}
@nix {"action":"start","fields":["${HELLO}","https://cache.nixos.org"],"id":5368709120001,"level":4,"parent":0,"text":"copying path '${HELLO}' from 'https://cache.nixos.org'","type":108}
@nix {"action":"start","fields":["https://cache.nixos.org/nar/1b2c.nar.xz"],"id":5368709120002,"level":5,"parent":5368709120001,"text":"downloading 'https://cache.nixos.org/nar/1b2c.nar.xz'","type":101}
@nix {"action":"result","fields":[52000,52000,0,0],"id":5368709120002,"type":105}
@nix {"action":"stop","id":5368709120002}
@nix {"action":"stop","id":5368709120001}
@nix {"action":"start","fields":["${APP}","ssh-ng://builder@arm64.example",1,1],"id":5368709120003,"level":3,"parent":0,"text":"building '${APP}' on 'ssh-ng://builder@arm64.example'","type":105}
@nix {"action":"result","fields":["unpackPhase"],"id":5368709120003,"type":104}
@nix {"action":"result","fields":["unpacking source archive /nix/store/src.tar.gz"],"id":5368709120003,"type":101}
@nix {"action":"result","fields":["buildPhase"],"id":5368709120003,"type":104}
@nix {"action":"result","fields":["make: *** [Makefile:3: all] Error 2"],"id":5368709120003,"type":101}
@nix {"action":"msg","level":1,"msg":"\\u001b[35;1mwarning:\\u001b[0m ignoring untrusted substituter"}
@nix {"action":"stop","id":5368709120003}
@nix {"action":"msg","level":0,"msg":"\\u001b[31;1merror:\\u001b[0m Cannot build '\\u001b[35;1m${APP}\\u001b[0m'.\\n       Reason: \\u001b[31;1mbuilder failed with exit code 2\\u001b[0m.\\n       Last 1 log lines:\\n       > make: *** [Makefile:3: all] Error 2"}`;

describe('parseLogLine', () => {
  it('parses the four actions of Nix 2.8', () => {
    const lines = NIX_28_FAILED_BUILD.split('\n');
    expect(parseLogLine(lines[7] ?? '')).toEqual({
      kind: 'start',
      id: '99037650878468',
      type: ActivityType.Build,
      level: 3,
      text: `building '${DEP}'`,
      fields: [DEP, '', 1, 1],
    });
    expect(parseLogLine(lines[9] ?? '')).toEqual({
      kind: 'result',
      id: '99037650878468',
      type: ResultType.BuildLogLine,
      fields: ['building dep'],
    });
    expect(parseLogLine(lines[11] ?? '')).toEqual({ kind: 'stop', id: '99037650878468' });
    const msg = parseLogLine(lines.at(-1) ?? '');
    expect(msg).toMatchObject({ kind: 'msg', level: 0 });
    expect(msg?.kind === 'msg' && stripAnsi(msg.msg)).toBe(`error: builder for '${BROKEN}' failed with exit code 3`);
    expect(msg?.kind === 'msg' && msg.file).toBeUndefined();
  });

  it('keeps the parent of current Nix, dropping the top-level 0', () => {
    const lines = CURRENT.split('\n');
    expect(parseLogLine(lines[1] ?? '')).not.toHaveProperty('parent');
    expect(parseLogLine(lines[2] ?? '')).toMatchObject({ kind: 'start', parent: '5368709120001', type: 101 });
  });

  it('keeps activity ids above 2^53 exact', () => {
    const a = parseLogLine('@nix {"action":"stop","id":9007199254740993}');
    const b = parseLogLine('@nix {"action":"start","id":9007199254740992,"parent":18014398509481985,"type":0}');
    expect(a).toEqual({ kind: 'stop', id: '9007199254740993' });
    expect(b).toMatchObject({ id: '9007199254740992', parent: '18014398509481985' });
  });

  it('does not rewrite id-like text inside strings', () => {
    const e = parseLogLine('@nix {"action":"result","fields":["{\\"id\\":1,\\"parent\\":2}"],"id":7,"type":101}');
    expect(e).toEqual({ kind: 'result', id: '7', type: 101, fields: ['{"id":1,"parent":2}'] });
  });

  it('returns text events for plain and broken lines, undefined for empty ones', () => {
    expect(parseLogLine('warning: Git tree is dirty\n')).toEqual({ kind: 'text', text: 'warning: Git tree is dirty' });
    expect(parseLogLine('@nix {not json')).toEqual({ kind: 'text', text: '@nix {not json' });
    expect(parseLogLine('@nix [1]')).toEqual({ kind: 'text', text: '@nix [1]' });
    expect(parseLogLine('   ')).toBeUndefined();
    expect(parseLogLine('@nix {"action":"setPhase","phase":"x"}')).toMatchObject({ kind: 'other', action: 'setPhase' });
  });
});

describe('BuildLogTracker', () => {
  it('attributes lines and phases to derivations in a real 2.8 failure', () => {
    const t = new BuildLogTracker();
    for (const line of NIX_28_FAILED_BUILD.split('\n')) t.consumeLine(line);
    expect(t.started()).toEqual([DEP, BROKEN]);
    expect(t.stopped()).toEqual([DEP, BROKEN]);
    expect(t.running()).toEqual([]);
    expect(t.drv(DEP)?.lines).toEqual(['building dep']);
    expect(t.drv(BROKEN)).toMatchObject({ phase: 'buildPhase', lines: ['compiling', 'oops: failed'], machine: '' });
    expect(t.errors()).toHaveLength(1);
    expect(t.progress(ActivityType.Builds)).toEqual({ done: 1, expected: 1, running: 0, failed: 1 });
    expect(t.activity('99037650878467')).toMatchObject({ type: 0, stopped: true });
  });

  it('tracks substitutions, remote builds, parents and warnings in current output', () => {
    const t = new BuildLogTracker();
    for (const line of CURRENT.split('\n')) t.consumeLine(line);
    expect(t.substitutions()).toEqual([{ path: HELLO, substituter: 'https://cache.nixos.org', done: true }]);
    expect(t.activity('5368709120002')).toMatchObject({ type: ActivityType.FileTransfer, parent: '5368709120001' });
    expect(t.drv(APP)).toMatchObject({
      machine: 'ssh-ng://builder@arm64.example',
      phase: 'buildPhase',
      building: false,
    });
    expect(t.drv(APP)?.lines).toHaveLength(2);
    expect(t.messages.map((m) => m.level)).toEqual([1, 0]);
    expect(stripAnsi(t.errors()[0]?.msg ?? '')).toContain(`Cannot build '${APP}'`);
  });

  it('attributes lines of child activities to the enclosing build', () => {
    const t = new BuildLogTracker();
    t.consumeLine(`@nix {"action":"start","fields":["${APP}","",1,1],"id":10,"parent":0,"type":105}`);
    t.consumeLine(`@nix {"action":"start","fields":["${APP}"],"id":11,"parent":10,"type":110}`);
    t.consumeLine('@nix {"action":"start","id":12,"parent":11,"type":0}');
    t.consumeLine('@nix {"action":"result","fields":["uploading"],"id":12,"type":107}');
    t.consumeLine('@nix {"action":"result","fields":["orphan line"],"id":99,"type":101}');
    expect(t.drvOf('12')).toBe(APP);
    expect(t.drv(APP)?.lines).toEqual(['uploading']);
    expect(t.textLines).toEqual(['orphan line']);
    expect(t.running()).toEqual([APP]);
  });

  it('keeps only the last N lines per derivation and counts the rest', () => {
    const t = new BuildLogTracker({ maxLinesPerDrv: 3 });
    t.consumeLine(`@nix {"action":"start","fields":["${APP}","",1,1],"id":1,"type":105}`);
    for (let i = 1; i <= 10; i++) t.consumeLine(`@nix {"action":"result","fields":["line ${i}"],"id":1,"type":101}`);
    expect(t.drv(APP)).toMatchObject({ lines: ['line 8', 'line 9', 'line 10'], droppedLines: 7 });
    for (let i = 0; i < 5; i++) t.consumeLine(`plain ${i}`);
    expect(t.textLines).toEqual(['plain 2', 'plain 3', 'plain 4']);
  });

  it('continues the record when a derivation is built again and ignores unknown stops', () => {
    const t = new BuildLogTracker();
    t.consumeLine(`@nix {"action":"start","fields":["${APP}","",1,2],"id":1,"type":105}`);
    t.consumeLine('@nix {"action":"stop","id":1}');
    t.consumeLine('@nix {"action":"stop","id":1}');
    t.consumeLine('@nix {"action":"stop","id":424242}');
    t.consumeLine(`@nix {"action":"start","fields":["${APP}","",2,2],"id":2,"type":105}`);
    expect(t.started()).toEqual([APP]);
    expect(t.drv(APP)?.building).toBe(true);
    expect(t.drvs()).toHaveLength(1);
  });
});
