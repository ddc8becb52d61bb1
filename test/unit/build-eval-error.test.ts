/**
 * Evaluation error positions from real messages: test/fixtures/build/eval-errors/<version>-<attr>[-trace].txt is the
 * stderr of the engine's `nix eval --apply` for the fixture flake's eval-throw and eval-type checks, with Nix 2.8.0
 * and 2.34.8, without and with --show-trace.
 */
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { dropWrapperFrames, parseEvalError, relativeToSource } from '../../src/build/eval-error.js';

const DIR = path.resolve('test/fixtures/build/eval-errors');
const sample = (name: string) => readFileSync(path.join(DIR, `${name}.txt`), 'utf8');
const SOURCE = '/nix/store/yxmm73nhqiys5r0jqnmhfblk0xjb1h1j-source';

describe('evaluation errors, Nix 2.8', () => {
  it('type error: the position printed under the message', () => {
    const e = parseEvalError(sample('2.8.0-eval-type'), { sourcePath: SOURCE });
    expect(e.summary).toBe('cannot add a string to an integer');
    expect(e.location).toMatchObject({ line: 38, column: 41, relativeFile: 'flake.nix' });
    expect(e.location?.file).toMatch(/^\/tmp\/rec\/store2\.8\.0\/nix\/store\/[a-z0-9]{32}-source\/flake\.nix$/);
    expect(e.message).not.toMatch(/show-trace/);
  });

  it('throw: no position without a trace; the innermost frame of the trace', () => {
    const plain = parseEvalError(sample('2.8.0-eval-throw'));
    expect(plain).toEqual({
      message: 'error: FIXTURE: eval-throw cannot be evaluated',
      summary: 'FIXTURE: eval-throw cannot be evaluated',
    });
    const traced = parseEvalError(sample('2.8.0-eval-throw-trace'), { sourcePath: SOURCE });
    expect(traced.location).toMatchObject({ line: 37, column: 9, relativeFile: 'flake.nix' });
  });
});

describe('evaluation errors, Nix 2.34', () => {
  it('type error: the message is last and carries its own position', () => {
    const e = parseEvalError(sample('2.34.8-eval-type'), { sourcePath: SOURCE });
    expect(e.summary).toBe('cannot add a string to an integer');
    expect(e.location).toMatchObject({ line: 38, column: 41, relativeFile: 'flake.nix' });
    // Our --apply wrapper's frames are noise for the user; Nix's own frames stay.
    expect(e.message).not.toContain('«string»');
    expect(e.message).toContain('derivationStrict');
    expect(e.message).toMatch(/^error:\n/);
  });

  it('throw: frames come first, outermost first; the last usable one is the throw', () => {
    const plain = parseEvalError(sample('2.34.8-eval-throw'));
    expect(plain.summary).toBe('FIXTURE: eval-throw cannot be evaluated');
    // Only «string» frames without --show-trace: nothing to annotate, so the engine retries with the trace.
    expect(plain.location).toBeUndefined();
    const traced = parseEvalError(sample('2.34.8-eval-throw-trace'), { sourcePath: SOURCE });
    expect(traced.location).toMatchObject({ line: 37, column: 22, relativeFile: 'flake.nix' });
  });

  it('a position in a flake input is kept but not made relative', () => {
    const e = parseEvalError(sample('2.34.8-eval-type'), {
      sourcePath: '/nix/store/00000000000000000000000000000000-source',
    });
    expect(e.location?.line).toBe(38);
    expect(e.location?.relativeFile).toBeUndefined();
  });
});

describe('other message forms', () => {
  it('lazy-tree pseudo-files and «string» positions', () => {
    const msg = [
      'error:',
      "       … while evaluating the attribute 'checks.x86_64-linux.vm-boot'",
      '         at «github:owner/repo/0123abc»/nix/checks.nix:12:5:',
      '       … while evaluating anonymous lambda',
      '         at «string»:1:1:',
      '',
      "       error: attribute 'foo' missing",
    ].join('\n');
    const e = parseEvalError(msg);
    expect(e.summary).toBe("attribute 'foo' missing");
    expect(e.location).toEqual({
      file: '«github:owner/repo/0123abc»/nix/checks.nix',
      line: 12,
      column: 5,
      relativeFile: 'nix/checks.nix',
    });
  });

  it('warnings before the error and messages with no position', () => {
    const msg = "warning: Git tree '/w' is dirty\nerror: flake 'path:/w' does not provide attribute 'checks'\n";
    expect(parseEvalError(msg)).toEqual({
      message: "error: flake 'path:/w' does not provide attribute 'checks'",
      summary: "flake 'path:/w' does not provide attribute 'checks'",
    });
  });

  it('colours are removed', () => {
    const e = parseEvalError(
      '\u001b[31;1merror:\u001b[0m boom\n       at \u001b[35;1m/nix/store/' +
        'a'.repeat(32) +
        '-source/f.nix:3:4\u001b[0m:\n',
    );
    expect(e).toMatchObject({ summary: 'boom', location: { line: 3, column: 4, relativeFile: 'f.nix' } });
  });

  it('relative paths only for the flake source', () => {
    const h = 'b'.repeat(32);
    expect(relativeToSource(`/nix/store/${h}-source/sub/flake.nix`)).toBe('sub/flake.nix');
    expect(relativeToSource(`/real/root/nix/store/${h}-source/a.nix`, `/nix/store/${h}-source`)).toBe('a.nix');
    expect(relativeToSource(`/nix/store/${h}-nixpkgs-src/lib.nix`)).toBeUndefined();
    expect(relativeToSource('«string»/x.nix')).toBeUndefined();
    expect(relativeToSource('/home/me/flake.nix')).toBeUndefined();
  });

  it('drops only the wrapper frames', () => {
    const lines = ['error:', '  … a', '    at «string»:1:1:', '', '  … b', '    at /x.nix:1:1:', '', '  error: m'];
    expect(dropWrapperFrames(lines)).toEqual(['error:', '  … b', '    at /x.nix:1:1:', '', '  error: m']);
  });
});
